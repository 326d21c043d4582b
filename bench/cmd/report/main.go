// Command report reads the output of the bench package's Go benchmarks
// and prints Markdown tables of the medians, with ratios to the floor, and
// the cached-path targets with the measured figures.
//
//	go test -run '^$' -bench . -benchmem -count 6 -cpu 1,2 ./bench > bench.txt
//	go run ./bench/cmd/report bench.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// key identifies one benchmark configuration.
type key struct {
	bench      string // Cached, CachedParallel, Scaling
	impl       string
	goroutines int // Scaling only
	procs      int
}

type samples struct{ ns, bytes, allocs []float64 }

var procsSuffix = regexp.MustCompile(`-(\d+)$`)

func parse(r io.Reader, into map[key]*samples, order *[]string) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		k := key{procs: 1}
		if m := procsSuffix.FindStringSubmatch(name); m != nil {
			k.procs, _ = strconv.Atoi(m[1])
			name = strings.TrimSuffix(name, m[0])
		}
		parts := strings.Split(name, "/")
		k.bench = parts[0]
		for _, p := range parts[1:] {
			kv := strings.SplitN(p, "=", 2)
			if len(kv) != 2 {
				continue
			}
			switch kv[0] {
			case "impl":
				k.impl = kv[1]
			case "goroutines":
				k.goroutines, _ = strconv.Atoi(kv[1])
			}
		}
		s := into[k]
		if s == nil {
			s = &samples{}
			into[k] = s
			if !slices.Contains(*order, k.impl) {
				*order = append(*order, k.impl)
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "B/op":
				s.bytes = append(s.bytes, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			}
		}
	}
	return sc.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ns(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f µs", v/1000)
	}
	return fmt.Sprintf("%.0f ns", v)
}

func ratio(v, floor float64) string {
	if floor == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v/floor)
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("report: ")
	data := map[key]*samples{}
	var impls []string
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			log.Fatal(err)
		}
		err = parse(f, data, &impls)
		f.Close()
		if err != nil {
			log.Fatal(err)
		}
	}
	if len(data) == 0 {
		log.Fatal("no benchmark results")
	}
	var procs []int
	for k := range data {
		if !slices.Contains(procs, k.procs) {
			procs = append(procs, k.procs)
		}
	}
	slices.Sort(procs)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()

	get := func(k key) (ns, b, allocs float64, n int, ok bool) {
		s := data[k]
		if s == nil {
			return 0, 0, 0, 0, false
		}
		return median(s.ns), median(s.bytes), median(s.allocs), len(s.ns), true
	}

	fmt.Fprintln(w, "Medians; × is the ratio to the floor's median in the same column.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| impl | GOMAXPROCS | ns/op | × floor | B/op | allocs/op | RunParallel ns/op | × floor | runs |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range procs {
		fs, _, _, _, _ := get(key{bench: "Cached", impl: "floor", procs: p})
		fp, _, _, _, _ := get(key{bench: "CachedParallel", impl: "floor", procs: p})
		for _, im := range impls {
			s, b, a, n, ok := get(key{bench: "Cached", impl: im, procs: p})
			if !ok {
				continue
			}
			par, _, _, _, _ := get(key{bench: "CachedParallel", impl: im, procs: p})
			fmt.Fprintf(w, "| %s | %d | %s | %s | %.0f | %.0f | %s | %s | %d |\n",
				im, p, ns(s), ratio(s, fs), b, a, ns(par), ratio(par, fp), n)
		}
	}
	fmt.Fprintln(w)

	var levels []int
	for k := range data {
		if k.bench == "Scaling" && !slices.Contains(levels, k.goroutines) {
			levels = append(levels, k.goroutines)
		}
	}
	slices.Sort(levels)
	if len(levels) > 0 {
		fmt.Fprintln(w, "#### Scaling: ns/op (wall time per request) by goroutines")
		fmt.Fprintln(w)
		fmt.Fprint(w, "| impl | GOMAXPROCS |")
		sep := "|---|---:|"
		for _, g := range levels {
			fmt.Fprintf(w, " %d |", g)
			sep += "---:|"
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, sep)
		for _, p := range procs {
			for _, im := range impls {
				if _, ok := data[key{bench: "Scaling", impl: im, goroutines: levels[0], procs: p}]; !ok {
					continue
				}
				fmt.Fprintf(w, "| %s | %d |", im, p)
				for _, g := range levels {
					v, _, _, _, _ := get(key{bench: "Scaling", impl: im, goroutines: g, procs: p})
					f, _, _, _, _ := get(key{bench: "Scaling", impl: "floor", goroutines: g, procs: p})
					fmt.Fprintf(w, " %s (%s) |", ns(v), ratio(v, f))
				}
				fmt.Fprintln(w)
			}
		}
		fmt.Fprintln(w)
	}

	writeTargets(w, get, procs, levels)
}

// writeTargets checks proxyauth's cached-path targets in the Cached and
// CachedParallel columns, and counts how the Scaling columns compare.
func writeTargets(w io.Writer, get func(key) (float64, float64, float64, int, bool), procs, levels []int) {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	fmt.Fprintln(w, "#### Cached-path targets (proxyauth)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| benchmark | allocs/op ≤ floor + 1 | ns/op ≤ 1.3 × floor | ns/op < x/oauth2 | ns/op < azcore |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, p := range procs {
		for _, bench := range []string{"Cached", "CachedParallel"} {
			k := func(im string) key { return key{bench: bench, impl: im, procs: p} }
			pn, _, pa, _, ok := get(k("proxyauth"))
			if !ok {
				continue
			}
			fn, _, fa, _, _ := get(k("floor"))
			xn, _, _, _, _ := get(k("x-oauth2"))
			an, _, _, _, _ := get(k("azcore"))
			fmt.Fprintf(w, "| %s, GOMAXPROCS=%d | %.0f vs %.0f: %s | %s: %s | %s vs %s: %s | %s vs %s: %s |\n", bench, p,
				pa, fa, verdict(pa <= fa+1),
				ratio(pn, fn), verdict(pn <= 1.3*fn),
				ns(pn), ns(xn), verdict(pn < xn),
				ns(pn), ns(an), verdict(pn < an))
		}
	}
	fmt.Fprintln(w)

	var cols, floorOK, belowX, belowAz int
	for _, p := range procs {
		for _, g := range levels {
			k := func(im string) key { return key{bench: "Scaling", impl: im, goroutines: g, procs: p} }
			pn, _, _, _, ok := get(k("proxyauth"))
			if !ok {
				continue
			}
			fn, _, _, _, _ := get(k("floor"))
			xn, _, _, _, _ := get(k("x-oauth2"))
			an, _, _, _, _ := get(k("azcore"))
			cols++
			if pn <= 1.3*fn {
				floorOK++
			}
			if pn < xn {
				belowX++
			}
			if pn < an {
				belowAz++
			}
		}
	}
	if cols > 0 {
		fmt.Fprintf(w, "Scaling, by median: proxyauth is within 1.3 × floor in %d of %d columns, below x/oauth2 in %d and below azcore in %d. "+
			"Columns where the medians are close are within the noise of a shared machine: see the benchstat p-values below.\n\n",
			floorOK, cols, belowX, belowAz)
	}
}
