#!/bin/sh
# "Writes code" for task T-1 and reports it done.
echo "coder: working on T-1 with model ${MODEL:-default}"
i=1
while [ "$i" -le 3 ]; do
    echo "coder: step $i/3"
    i=$((i + 1))
    sleep 0.2
done
echo "coder: 1 warning: unused variable" >&2
agentwatch emit task-completed --task T-1 --status success --result '{"files": 2}'
echo "coder: T-1 done"
