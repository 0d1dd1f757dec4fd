#!/bin/sh
# The trained character model (examples/charlm) against PyTorch (tests/models/charmodel.inc says
# what is checked; examples/charlm/make_refs.py wrote the references into examples/charlm/ref/).
set -eu
KILN=$1 NPYCMP=$2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
. tests/models/charmodel.inc
char_model charlm examples/charlm/charlm.kiln examples/charlm/ref
