#!/usr/bin/env bash
# Spark resource discovery script for GPUs: prints {"name": "gpu", "addresses": ["0", "1", ...]}, the nvidia-smi
# indices of the GPUs this process can see. Spark runs it on each standalone worker
# (spark.worker.resource.gpu.discoveryScript) or in each YARN / Kubernetes executor container
# (spark.executor.resource.gpu.discoveryScript). colorspark pins each task's TensorFlow to the addresses Spark assigns
# it from these (colorspark/devices.py); see "GPU executors" in docs/clusters.md.
set -euo pipefail
indices=$(nvidia-smi --query-gpu=index --format=csv,noheader | tr -d ' ' | paste -sd, -)
addresses=${indices//,/\",\"}
echo "{\"name\": \"gpu\", \"addresses\": [${indices:+\"$addresses\"}]}"
