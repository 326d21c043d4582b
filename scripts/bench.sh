#!/usr/bin/env bash
# Runs the comparison of proxyauth with golang.org/x/oauth2 and azcore and
# writes BENCHMARKS.md: the cached-path Go benchmarks (-count 6, -cpu 1,2),
# benchstat over them, and the scenario programs against the loopback sandbox.
#
# Environment: GO (go), COUNT (6), CPU (1,2), BENCHTIME (500ms), OUT
# (BENCHMARKS.md), KEEP (a directory to keep the raw outputs in), LONG (1:
# also a rollover with 35 s tokens, where azcore refreshes early; 4 more
# minutes), PROCESSES (200: the fleet's processes), FLEET_SVG
# (bench/fleet.svg: the fleet figure, linked from OUT by this path),
# FLEET_RETRY_AFTER (2s: the Retry-After of proxyauth's second fleet run;
# 0: no second run), FLEET_ONLY (1: run only the fleet scenario, about a
# minute and a half, and replace the fleet section of OUT, keeping the rest).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
COUNT=${COUNT:-6}
CPU=${CPU:-1,2}
BENCHTIME=${BENCHTIME:-500ms}
OUT=${OUT:-BENCHMARKS.md}
PROCESSES=${PROCESSES:-200}
FLEET_SVG=${FLEET_SVG:-bench/fleet.svg}
FLEET_RETRY_AFTER=${FLEET_RETRY_AFTER:-2s}

# The hand-written sections of BENCHMARKS.md (a summary, the demo) lie
# between these two lines; they are kept as they are, read before the long
# run so that a file without them stops the script at once.
kept_begin='<!-- hand-written: scripts/bench.sh keeps everything from here to the end marker -->'
kept_end='<!-- end of hand-written -->'
kept_from=$OUT
[ -f "$kept_from" ] || kept_from=BENCHMARKS.md
kept=$(awk -v b="$kept_begin" -v e="$kept_end" '$0 == b { on = 1 } on { print } on && $0 == e { exit }' "$kept_from")
if [ "$(printf '%s\n' "$kept" | head -n1)" != "$kept_begin" ] || [ "$(printf '%s\n' "$kept" | tail -n1)" != "$kept_end" ]; then
	echo "bench.sh: $kept_from has no hand-written section between the lines" >&2
	echo "  $kept_begin" >&2
	echo "  $kept_end" >&2
	exit 1
fi

# The fleet scenario: its Markdown in $work/fleet.md, its figure in
# $work/fleet.svg, and its line for the head of OUT in $fleet_line.
run_fleet() {
	echo "== fleet" >&2
	local began before
	began=$(date +%s)
	before=$(cut -d' ' -f1-3 /proc/loadavg)
	(cd bench && "$GO" run ./cmd/scenarios -level 2 -only fleet -targets=false -processes "$PROCESSES" \
		-fleet-retry-after "$FLEET_RETRY_AFTER" -fleet-svg "$work/fleet.svg" -fleet-svg-link "$FLEET_SVG") >"$work/fleet.md"
	fleet_line="- Fleet: \`go run ./cmd/scenarios -only fleet -processes $PROCESSES -fleet-retry-after $FLEET_RETRY_AFTER\`"
	fleet_line="$fleet_line (in bench/), $(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - began)) s; load average"
	fleet_line="$fleet_line $before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
}

work=${KEEP:-}
if [ -z "$work" ]; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
work=$(cd "$work" && pwd) # the nested module runs from bench/

if [ "${FLEET_ONLY:-0}" = 1 ]; then
	[ -f "$OUT" ] || { echo "bench.sh: FLEET_ONLY=1 replaces the fleet section of $OUT, which does not exist" >&2; exit 1; }
	run_fleet
	# Everything before the fleet section, with the head's fleet line
	# replaced (or added after the scenarios' line), then the new section.
	# The hand-written section is copied as it is.
	awk -v line="$fleet_line" -v b="$kept_begin" -v e="$kept_end" '
		$0 == b { head = 1 }
		!head && /^- Fleet: / { next }
		tail && /^## Fleet: / { exit }
		{ print }
		!head && /^- Scenarios: / { print line }
		$0 == e { tail = 1 }
	' "$OUT" >"$work/out.md"
	cat "$work/fleet.md" >>"$work/out.md"
	mv "$work/out.md" "$OUT"
	cp "$work/fleet.svg" "$FLEET_SVG"
	echo "== replaced the fleet section of $OUT" >&2
	exit 0
fi

began=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
benchcmd="go test -run '^\$' -bench . -benchmem -count $COUNT -cpu $CPU -benchtime $BENCHTIME . (in the bench module)"

echo "== Go benchmarks: $benchcmd" >&2
(cd bench && "$GO" test -run '^$' -bench . -benchmem -count "$COUNT" -cpu "$CPU" -benchtime "$BENCHTIME" .) | tee "$work/bench.txt" >&2

cachecmd="go test -run '^\$' -bench CacheGet -benchmem -count $COUNT -cpu $CPU -benchtime $BENCHTIME ./transport"
echo "== Go benchmarks: $cachecmd" >&2
"$GO" test -run '^$' -bench CacheGet -benchmem -count "$COUNT" -cpu "$CPU" -benchtime "$BENCHTIME" ./transport | tee "$work/cache.txt" >&2

echo "== benchstat" >&2
stat() { "$GO" run "$BENCHSTAT" "$@" "$work/bench.txt"; }
stat -filter '.name:Cached' -col /impl >"$work/stat-cached.txt"
stat -filter '.name:CachedParallel' -col /impl >"$work/stat-parallel.txt"
stat -filter '.name:Scaling' -row /goroutines -col /impl -table /gomaxprocs >"$work/stat-scaling.txt"
(cd bench && "$GO" run ./cmd/report "$work/bench.txt") >"$work/report.md"

echo "== scenarios" >&2
scen_began=$(date +%s)
(cd bench && "$GO" run ./cmd/scenarios -level 3 -only rollover,storm,outage) >"$work/scenarios.md"
if [ "${LONG:-0}" = 1 ]; then
	(cd bench && "$GO" run ./cmd/scenarios -level 3 -only rollover -lifetime 35s -lifetimes 2 -margin 4s -targets=false \
		-title "Rollover with 35 s tokens (LONG=1): 64 workers, 2 token lifetimes") >"$work/long.md"
fi
scen_secs=$(($(date +%s) - scen_began))

run_fleet

# The cost of going through `proxyauth serve` against calling the gateway
# directly (bench/overhead.go); it builds cmd/proxyauth first.
echo "== overhead of proxyauth serve" >&2
(cd bench && "$GO" run ./cmd/overhead -level 3) >"$work/overhead.md"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
secs=$(($(date +%s) - began))
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
cores=$(nproc)
goversion=$("$GO" env GOVERSION)

made_by="make bench"
scen_cmd="go run ./cmd/scenarios -only rollover,storm,outage (in bench/)"
if [ "${LONG:-0}" = 1 ]; then
	made_by="LONG=1 make bench"
	scen_cmd="$scen_cmd\`, then \`go run ./cmd/scenarios -only rollover -lifetime 35s -lifetimes 2 -margin 4s"
fi

{
	cat <<HEAD
# Benchmarks: proxyauth, golang.org/x/oauth2 and azcore

Generated by \`$made_by\` (\`scripts/bench.sh\`); do not edit by hand, except the sections
Summary and The demo, which the script keeps as they are.

- Machine: $cpu_model, $cores cores, $goversion $("$GO" env GOOS)/$("$GO" env GOARCH); $(date -u '+%Y-%m-%d %H:%M UTC').
- Load average (1, 5, 15 min): $load_before before, $load_after after. The machine is shared: compare
  peers within one table, never figures across runs.
- Go benchmarks: \`$benchcmd\`; medians and comparisons by benchstat
  (\`go run $BENCHSTAT\`).
- Scenarios: \`$scen_cmd\` (${scen_secs} s). The whole run took ${secs} s.
$fleet_line
- The command's overhead: \`go run ./cmd/overhead\` (in bench/).

$kept

## Cached path

A token in each peer's cache; the base answers at once with a canned response, so only the auth layer
is measured. The request is \`GET https://llm.example.com/v1/models\` with three headers, no body
(azcore's \`runtime.NewRequestFromRequest\` would copy a body; the others do not touch it), reused
across iterations. Every peer's early-refresh margin is 5 minutes.

- **floor**: \`req.Clone(ctx)\` + \`Header.Set("Authorization", "Bearer "+token)\` over the same base:
  the least a RoundTripper that sets a header must do.
- **proxyauth**: \`transport.New(cred, scope, &transport.Options{Base: base})\`.
- **x-oauth2**: \`&oauth2.Transport{Source: oauth2.ReuseTokenSourceWithExpiry(nil, src, 5*time.Minute), Base: base}\`.
- **azcore**: an azcore v1.24.0 pipeline (\`runtime.NewPipeline\` with \`runtime.NewBearerTokenPolicy\`), set up as
  openai-go/v3/azure sets it up (retries off, bearer policy per retry) but at its cheapest: built once,
  telemetry off, the base as its \`policy.Transporter\`; a request goes in with
  \`runtime.NewRequestFromRequest\`, \`runtime.SkipBodyDownload\` and \`Pipeline.Do\`. The credential sets
  \`RefreshOn\` 5 minutes before expiry.
- **azcore-openai-go**: what openai-go/v3 \`azure.WithTokenCredential\` does per request: a new pipeline for
  every request (telemetry on, retries off) around one shared bearer policy, ending in the next
  RoundTripper. Only in the cached-path tables.

\`Cached\` is one goroutine; \`CachedParallel\` is \`b.RunParallel\` (one goroutine per P); \`Scaling\`
starts a fixed number of goroutines whatever GOMAXPROCS is and reports wall time per request.

HEAD
	cat "$work/report.md"
	echo "#### The cache's fresh path"
	echo
	echo "\`internal/tokencache\` \`Get\` with a fresh, expiring token (so the clock is read as in production):"
	echo "an atomic load and a time comparison, no lock, no allocation. \`$cachecmd\`:"
	echo
	echo '```'
	"$GO" run "$BENCHSTAT" -col /mode "$work/cache.txt"
	echo '```'
	echo
	echo "#### benchstat: Cached"
	echo
	echo '```'
	cat "$work/stat-cached.txt"
	echo '```'
	echo
	echo "#### benchstat: CachedParallel"
	echo
	echo '```'
	cat "$work/stat-parallel.txt"
	echo '```'
	echo
	echo "#### benchstat: Scaling"
	echo
	echo "Rows are goroutines; \`/gomaxprocs:\` with no value is GOMAXPROCS=1."
	echo
	echo '```'
	cat "$work/stat-scaling.txt"
	echo '```'
	echo
	echo "## Scenarios"
	echo
	echo "Each peer in turn, against a sandbox of its own (\`internal/sandbox\`: an OAuth2 client-credentials"
	echo "token endpoint and an OpenAI-compatible proxy that accepts only that endpoint's valid, unrevoked"
	echo "tokens), over a real \`http.Transport\` on loopback. Each peer fetches tokens as its users would, with"
	echo "no caching below its own: proxyauth with \`credential.NewOAuth2\`, x/oauth2 and azcore with"
	echo "\`clientcredentials.Config.Token\`; all three authenticate with HTTP Basic."
	echo
	cat "$work/scenarios.md"
	cat <<'NOTE'
### Rollover with long-lived tokens

azcore lets at most one early refresh start per 30 s (`temporal.Resource`, a constant), so with the
1 s tokens of the rollover above it never refreshes early: all its callers wait at each expiry, and
requests sent just before expiry can get 401. With tokens that live longer than that, it refreshes
early, inside the request that finds the token due: that one request waits for the token endpoint, the
others use the old token. `LONG=1 make bench` adds a rollover with 35 s tokens (refresh 4 s before
expiry) that shows it; x/oauth2 still blocks every caller at each refresh.

NOTE
	if [ -f "$work/long.md" ]; then
		cat "$work/long.md"
	fi
	# Before the fleet section, which FLEET_ONLY=1 replaces to the end.
	echo "## The command"
	echo
	echo "What \`proxyauth serve\` (cmd/proxyauth) adds to a request, against calling the gateway directly."
	echo
	cat "$work/overhead.md"
	cat "$work/fleet.md"
} >"$OUT"
# The figure goes with the Markdown that links to it.
cp "$work/fleet.svg" "$FLEET_SVG"
echo "== wrote $OUT in ${secs} s" >&2
