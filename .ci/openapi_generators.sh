#!/usr/bin/env bash
# CI: two client generators accept the service's OpenAPI document without an error.
#
# The document is the one `erapi serve` serves (built from the route table, erapi/routes.py, and
# schemas/). openapi-generator (the PyPI wheel `openapi-generator-cli`, which bundles the jar; needs Java)
# validates it and generates a Python client from it; openapi-typescript (npm) turns it into TypeScript types,
# which tsc then type-checks. Any error fails (the validator's warnings and recommendations do not). openapi-python-client is run
# by the test suite (tests/test_generated_client.py). The npm packages live in ERAPI_NPM_CACHE (default
# ~/.cache/erapi/openapi-typescript), so a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=python
command -v "$python" >/dev/null || python=python3
npm_dir=${ERAPI_NPM_CACHE:-$HOME/.cache/erapi/openapi-typescript}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" - "$work/openapi.json" <<'EOF'
import sys
from pathlib import Path

import orjson

from erapi.openapi import build_document
from erapi.routes import OPERATIONS

Path(sys.argv[1]).write_bytes(orjson.dumps(build_document(OPERATIONS), option=orjson.OPT_INDENT_2))
EOF
echo "OpenAPI document: $(wc -c <"$work/openapi.json") bytes"

echo "-- openapi-generator $(openapi-generator-cli version)"
openapi-generator-cli validate -i "$work/openapi.json"  # exits non-zero on an error in the document
# generate validates the document again and stops on an error (a schema it cannot read, a bad reference)
openapi-generator-cli generate -i "$work/openapi.json" -g python -o "$work/python-client" \
    --additional-properties=packageName=erapi_client >"$work/generate.log" 2>&1 \
    || { tail -n 40 "$work/generate.log" >&2; echo "CI: openapi-generator could not generate a client" >&2; exit 1; }
if grep -E "\] ERROR |Exception" "$work/generate.log" >&2; then
    echo "CI: openapi-generator reported errors while generating" >&2
    exit 1
fi
echo "python client: $(find "$work/python-client" -name '*.py' | wc -l) files"

echo "-- openapi-typescript"
if [[ ! -x "$npm_dir/node_modules/.bin/openapi-typescript" ]]; then
    mkdir -p "$npm_dir"
    npm install --prefix "$npm_dir" --no-audit --no-fund --silent openapi-typescript@7 typescript@5
fi
"$npm_dir/node_modules/.bin/openapi-typescript" "$work/openapi.json" -o "$work/erapi.d.ts"
"$npm_dir/node_modules/.bin/tsc" --noEmit --strict "$work/erapi.d.ts"
echo "typescript types: $(wc -l <"$work/erapi.d.ts") lines, type-checked"
