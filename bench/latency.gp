# SPDX-License-Identifier: MIT
# Guest-visible conversion latency against size, log-log (bench/run-bench.sh
# calls: gnuplot -e "datafile='...'; outfile='...'" bench/latency.gp).
# datafile: index 0 = to shared, index 1 = to private; columns: bytes,
# gmvm discard, gmvm discard + deferred reclaim (spaced), gmvm in-place,
# floor discard, floor in-place (us; floors: syscalls + bare exit).
set terminal svg size 1000,440 dynamic enhanced font 'sans,11' background rgb 'white'
set output outfile
set logscale xy
set grid xtics ytics mytics lc rgb '#dddddd'
set xtics ('4 KiB' 4096, '2 MiB' 2097152, '64 MiB' 67108864, '1 GiB' 1073741824)
set format y '10^{%L}'
set xlabel 'range converted'
set ylabel 'latency, us (doorbell out to guest resumed)'
set key top left box opaque font 'sans,9'
set xrange [2048:2147483648]
set multiplot layout 1,2 title 'gmvm guest-visible conversion latency (medians) against the kernel floor'
do for [d = 0:1] {
	set title (d == 0 ? 'to shared' : 'to private')
	plot datafile index d using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'gmvm, discard', \
	     '' index d using 1:3 with linespoints lw 2 pt 9 lc rgb '#2ca02c' title 'gmvm, discard + deferred reclaim', \
	     '' index d using 1:4 with linespoints lw 2 pt 5 lc rgb '#d62728' title 'gmvm, in-place', \
	     '' index d using 1:5 with linespoints lw 1 dt 2 pt 6 lc rgb '#1f77b4' title 'floor, discard', \
	     '' index d using 1:6 with linespoints lw 1 dt 2 pt 4 lc rgb '#d62728' title 'floor, in-place'
}
unset multiplot
