# plot_recall.gp - recall@10 vs QPS per system (this run) and hydb's
# history on one family.  Variables: csv, hist, fam (default hysac), out.
set datafile separator ','
if (!exists('fam')) fam = 'hysac'
isfam(c) = c eq fam || (fam eq 'hysac' && c eq '')
set terminal pngcairo size 1200,500 noenhanced
set output out
set multiplot layout 1,2
set title 'recall@10 vs QPS, 1 thread (this run, '.fam.')'
set xlabel 'recall@10'
set ylabel 'queries per second'
set logscale y
set key bottom left
set grid
plot for [s in 'hydb hnswlib-lorentz hnswlib-ip hnswlib-l2log faiss-flatip'] \
	csv using (strcol(1) eq s ? $5 : NaN):(strcol(1) eq s ? $7 : NaN) \
	with linespoints title s
unset logscale y
set title 'hydb history ('.fam.'): QPS at ef=64 (left axis), recall@10 at ef=64 (right)'
set xlabel 'run'
set ylabel 'QPS'
set y2label 'recall@10'
set y2tics
set ytics nomirror
plot hist using (strcol(6) eq 'hydb' && isfam(strcol(17)) && $7 == 64 ? $1 : NaN):12 \
	with linespoints title 'QPS', \
     hist using (strcol(6) eq 'hydb' && isfam(strcol(17)) && $7 == 64 ? $1 : NaN):10 axes x1y2 \
	with linespoints title 'recall@10'
unset multiplot
