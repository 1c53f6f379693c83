# Sourced by the benchmarks that run on the corpus: installs what they
# need, builds, makes the corpus (bench/make_corpus.sh) and sets
#   corpus  the pristine guests g1..g8   bin  the built programs
#   work    $VU_BENCH_WORK, else the directory given as $1 (created)
# Needs $here (the source tree).
"$here/scripts/install-deps.sh" --bench >/dev/null
"$here/scripts/build.sh" >/dev/null
"$here/bench/make_corpus.sh"
corpus=${VU_BENCH_CORPUS:-/var/tmp/vunify-bench-corpus}
work=${VU_BENCH_WORK:-$1}
bin=$here/build/tools
mkdir -p "$work"
