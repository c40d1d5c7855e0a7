#!/bin/sh
# A CI step: run an agent under agentwatch, follow it from another client,
# and fail the step with the agent's own exit status.
#
#   sh examples/ci.sh [COMMAND...]     (default: the chatty example agent)
set -u
export AGENTWATCH_HOME="${AGENTWATCH_HOME:-$(mktemp -d)}"
[ "$#" -gt 0 ] || set -- python3 "$(dirname "$0")/chatty_agent.py"

# Start the agent; --linger keeps the server up a little after it ends, so a
# follower that connects late still gets the final status.
agentwatch run --quiet --quiet-server --name build --linger 5 -- "$@" &
run_pid=$!

# Wait until the run is discoverable (agentwatch ps succeeds), at most 10 s.
tries=0
until agentwatch ps >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -gt 100 ] && { echo "ci.sh: agentwatch did not start" >&2; exit 125; }
    sleep 0.1
done

agentwatch subscribe build --until-exit
status=$?
wait "$run_pid"
echo "ci.sh: agent exited with status $status"
exit "$status"
