#!/bin/sh
# Reviews the change and raises an informational alert.
echo "reviewer: reviewing T-1"
sleep 0.3
agentwatch emit system-alert --level info --code review "T-1 approved"
echo "reviewer: approved"
