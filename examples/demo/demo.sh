#!/usr/bin/env bash
# The offline demo, once identify is installed: index the references, self-test them,
# identify the query photos. Run from the repository root (examples/demo/run.sh does).
# It works on a copy of projects/demo.yaml in indexes/ (which git ignores): verify
# writes its calibration into the project file, and a clean clone stays clean.
set -euo pipefail
mkdir -p indexes
{ cat projects/demo.yaml; printf '\ndata_dir: demo\n'; } > indexes/demo.yaml
identify index  --project indexes/demo.yaml
identify verify --project indexes/demo.yaml
identify match  --project indexes/demo.yaml examples/demo/queries/*.jpg
