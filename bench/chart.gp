# SPDX-License-Identifier: MIT
# bench/chart.gp - throughput and p99 per scenario and server, from the
# chart.dat written by bench/run.sh.  Call with -e "dat='...'; out='...'; n=N"
# (N servers; columns 2k and 2k+1 are server k's throughput and p99).
set terminal svg size 1000,760 dynamic font "sans,11" background rgb "white"
set output out
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set logscale y
set format y "%.0s%c"
set multiplot layout 2,1 title "poolsrv-bench: echo servers side by side (failed points omitted)"
set ylabel "throughput (msg/s; f: conn/s)"
plot for [k=0:n-1] dat using (column(2*k+2)):xtic(1) title columnhead(2*k+2)
set ylabel "p99 latency (us)"
plot for [k=0:n-1] dat using (column(2*k+3)):xtic(1) title columnhead(2*k+3)
unset multiplot
