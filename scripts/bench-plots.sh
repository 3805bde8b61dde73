#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Turns the CSV files of `taskq-bench --csv DIR` (and of
# `taskq-bench-cluster --csv DIR`) into SVG charts with gnuplot:
#   bench-throughput.svg  every throughput row, taskq's and the baselines'
#                         of the same run: median tasks/s, min..max whiskers
#   bench-batch.svg       throughput against tasks per call (1..256): taskq
#                         int 1->1 and the pipe with as many tasks per write
#   bench-latency.svg     push-to-take latency: the share of tasks taken
#                         within each latency (a CDF), per latency row
#   bench-cluster.svg     (when DIR has cluster.csv) end-to-end rates
#                         through NATS JetStream against JetStream alone
# Usage: scripts/bench-plots.sh CSV_DIR OUT_DIR
# Needs gnuplot (Debian package gnuplot-nox: SVG output, no X).
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 CSV_DIR OUT_DIR" >&2
	exit 2
fi
in=$1
out=$2
if ! command -v gnuplot >/dev/null; then
	echo "bench-plots: gnuplot is missing (Debian package gnuplot-nox): ./scripts/install-deps.sh installs it" >&2
	exit 1
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A value of run.csv ("key,value" lines), or "".
run_value() {
	[ -f "$in/run.csv" ] || return 0
	awk -F, -v k="$1" '$1 == k { sub(/^[^,]*,/, ""); gsub(/"/, ""); print; exit }' "$in/run.csv"
}
# CSV (RFC 4180: fields quoted when they hold a comma or a quote) to
# tab-separated values, which gnuplot reads without splitting a quoted
# name at its commas.
csv_to_tsv() {
	awk '{
		out = ""; field = ""; q = 0; n = length($0)
		for (i = 1; i <= n; i++) {
			c = substr($0, i, 1)
			if (q) {
				if (c == "\"") {
					if (substr($0, i + 1, 1) == "\"") { field = field c; i++ } else q = 0
				} else field = field c
			} else if (c == "\"") q = 1
			else if (c == ",") { out = out field "\t"; field = "" }
			else field = field c
		}
		print out field
	}' "$1"
}
# Text safe inside a gnuplot double-quoted string.
gp_text() {
	printf '%s' "$1" | tr -d '"\\'
}

# The subtitle: which run, where.
tool=$(run_value tool)
sub="${tool:-taskq-bench} $(run_value date_utc)"
cpu=$(run_value cpu)
cores=$(run_value cores)
[ -z "$cpu" ] || sub="$sub, $cpu"
[ -z "$cores" ] || sub="$sub, $cores cores"
if [ "$(run_value quick)" = 1 ]; then
	sub="$sub, --quick: a smoke test, not a measurement"
fi
sub=$(gp_text "$sub")

common="set terminal svg size 900,560 dynamic enhanced font 'sans,12' background '#ffffff'
set datafile separator '\t'
set datafile columnheaders
set grid xtics ytics lc rgb '#dddddd'
set border lc rgb '#555555'
"

# Horizontal bars on a log scale, one per row of a CSV file: the first
# column names the bar, column $3 is its median, $4 and $5 its minimum and
# maximum, column $6 "taskq" or anything else (colour); values in tasks/s.
# bars FILE OUT TITLE XLABEL NAMECOL MEDCOL MINCOL MAXCOL KINDCOL
bars() {
	local csv=$1 svg=$2 title=$3 xlabel=$4 name=$5 med=$6 lo=$7 hi=$8 kind=$9
	local n file="$tmp/bars.tsv"
	csv_to_tsv "$csv" >"$file"
	n=$(($(wc -l <"$file") - 1))
	[ "$n" -gt 0 ] || { echo "bench-plots: $csv has no rows" >&2; return 1; }
	gnuplot <<-EOF
	$common
	set output '$svg'
	set terminal svg size 900,$((170 + 26 * n)) dynamic enhanced font 'sans,12' background '#ffffff'
	set title "$(gp_text "$title")\\n{/*0.8 $sub}"
	set xlabel "$(gp_text "$xlabel")"
	set logscale x
	set format x '%g'
	set yrange [-$n:1]
	set ytics scale 0
	set key below horizontal
	set style fill solid 0.85 border -1
	floor = 0.01
	c(s) = (s eq 'taskq') ? 0x2b6cb0 : 0xc05621
	plot '$file' using (column($med)/1e6):(-\$0):(floor):(column($med)/1e6):(-\$0-0.38):(-\$0+0.38):(c(strcol($kind))):ytic(strcol($name)) \\
	         with boxxyerror lc rgb variable notitle, \\
	     '' using (column($med)/1e6):(-\$0):(column($lo)/1e6):(column($hi)/1e6) with xerrorbars pt -1 lc rgb '#333333' notitle, \\
	     '' using (column($hi)/1e6):(-\$0):(sprintf(' %.3g', column($med)/1e6)) with labels left font ',10' notitle, \\
	     NaN with boxes lc rgb '#2b6cb0' title 'taskq', \\
	     NaN with boxes lc rgb '#c05621' title 'baseline (same run)'
	EOF
}

made=()
if [ -f "$in/throughput.csv" ]; then
	bars "$in/throughput.csv" "$out/bench-throughput.svg" \
		"Throughput: taskq and the baselines, median of the runs (whiskers: min..max)" \
		"million tasks per second (log scale)" 1 8 9 10 3
	made+=("$out/bench-throughput.svg")
fi

if [ -f "$in/batch.csv" ]; then
	csv_to_tsv "$in/batch.csv" >"$tmp/batch.tsv"
	gnuplot <<-EOF
	$common
	set output '$out/bench-batch.svg'
	set title "Throughput against tasks per call, 1 producer -> 1 consumer, 8-byte tasks\\n{/*0.8 $sub}"
	set xlabel 'tasks per call (tq\\_push / tq\\_take batch; pipe: tasks per write)'
	set ylabel 'million tasks per second (log scale)'
	set logscale xy
	set xtics (1, 4, 16, 64, 256)
	set format y '%g'
	set key top left
	plot '$tmp/batch.tsv' using 1:(column(2)/1e6) with linespoints lw 2 pt 7 lc rgb '#2b6cb0' title 'taskq int 1->1', \\
	     '' using 1:(column(3)/1e6) with linespoints lw 2 pt 5 lc rgb '#c05621' title 'pipe (same tasks per write)'
	EOF
	made+=("$out/bench-batch.svg")
fi

if [ -f "$in/latency.csv" ]; then
	# One file per row (the rows' lines are contiguous), named in order.
	csv_to_tsv "$in/latency.csv" | awk -F'\t' -v dir="$tmp" 'NR > 1 {
		if ($1 != last) { k++; last = $1; print $1 > (dir "/lat-names") }
		print $2 "\t" $3 > (dir "/lat-" k ".tsv")
	}'
	if [ -f "$tmp/lat-names" ]; then
		colors=('#2b6cb0' '#c05621' '#2f855a' '#6b46c1' '#b7791f' '#c53030')
		plot=""
		k=0
		while IFS= read -r name; do
			k=$((k + 1))
			c=${colors[$(((k - 1) % ${#colors[@]}))]}
			plot="$plot${plot:+, }'$tmp/lat-$k.tsv' using 1:2 with steps lw 2 lc rgb '$c' title \"$(gp_text "$name")\""
		done <"$tmp/lat-names"
		gnuplot <<-EOF
		$common
		set datafile nocolumnheaders
		set output '$out/bench-latency.svg'
		set title "Push-to-take latency, one task per call, 1 -> 1: share of tasks taken within x\\n{/*0.8 $sub}"
		set xlabel 'microseconds (log scale)'
		set ylabel 'share of tasks'
		set logscale x
		set format x '%g'
		set yrange [0:1.02]
		set ytics 0.1
		set key bottom right
		plot $plot
		EOF
		made+=("$out/bench-latency.svg")
	fi
fi

if [ -f "$in/cluster.csv" ]; then
	bars "$in/cluster.csv" "$out/bench-cluster.svg" \
		"End to end through NATS JetStream, median of the runs (whiskers: min..max)" \
		"million tasks per second (log scale)" 1 3 4 5 6
	made+=("$out/bench-cluster.svg")
fi

if [ ${#made[@]} -eq 0 ]; then
	echo "bench-plots: no CSV files of taskq-bench --csv in $in" >&2
	exit 1
fi
for f in "${made[@]}"; do
	echo "$f"
done
