#!/bin/sh
# A CI step: run an agent under agentwatch, follow it from another client,
# and fail the step with the agent's own exit status.
#
#   sh examples/ci.sh [COMMAND...]     (default: the chatty example agent)
set -u
export AGENTWATCH_HOME="${AGENTWATCH_HOME:-$(mktemp -d)}"
[ "$#" -gt 0 ] || set -- python3 "$(dirname "$0")/chatty_agent.py"

agentwatch run --quiet --quiet-server --name build -- "$@" &
run_pid=$!

# Follows the run as soon as it serves (waiting up to --wait, 10 s, for it to
# start), or reads the agent's recorded status if it has already ended.
agentwatch subscribe build --until-exit
status=$?
wait "$run_pid"
echo "ci.sh: agent exited with status $status"
exit "$status"
