#!/usr/bin/env bash
# The offline demo, once identify is installed: index the references, self-test them,
# identify the query photos. Run from the repository root (examples/demo/run.sh does).
set -euo pipefail
identify index  --project projects/demo.yaml
identify verify --project projects/demo.yaml
identify match  --project projects/demo.yaml examples/demo/queries/*.jpg
