#!/bin/sh
# Usage: docker-run-gpu.sh DOCKER [docker run options] IMAGE [COMMAND...]
#
# Runs a container with every GPU (`--gpus all`). Where Docker has no GPU runtime or there is no
# GPU, `docker run --gpus all` fails before the container starts, with exit status 125 ("could
# not select device driver"): then the same container runs on the CPU. Any other status is the
# container's own and is returned as is.
set -u
docker="$1"
shift
"$docker" run --gpus all "$@"
status=$?
if [ "$status" -eq 125 ]; then
    echo "docker-run-gpu: no GPU runtime here (docker run --gpus all exited 125); running on the CPU" >&2
    exec "$docker" run "$@"
fi
exit "$status"
