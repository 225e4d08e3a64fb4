#!/usr/bin/env bash
# Sliding sync (MSC4186) per request as one user's room count grows, Ward and Synapse in one run:
# compare.sh with `ward-bench sliding` (see there). Extra arguments go to `ward-bench sliding`
# (e.g. --steps 10,100,1000 --repeat 5); JSON results stay in bench/results/sliding-<timestamp>/.
exec "$(dirname "$0")/compare.sh" sliding "$@"
