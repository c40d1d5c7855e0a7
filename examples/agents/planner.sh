#!/bin/sh
# Plans the work and assigns a task to the coder through agentwatch emit.
echo "planner: reading the issue"
agentwatch emit task-assigned --task T-1 --title "implement the parser" --assignee coder
echo "planner: task T-1 assigned to coder"
