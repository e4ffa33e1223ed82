package setuptime

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Fit is a least-squares polynomial y = Coef[0] + Coef[1] x + Coef[2] x^2 ...
// with its coefficient of determination R2 (1 - SS_res/SS_tot; 1 when the
// data have no variance and the fit is exact).
type Fit struct {
	Coef []float64
	R2   float64
}

// At evaluates the polynomial at x.
func (f Fit) At(x float64) float64 {
	y := 0.0
	for k := len(f.Coef) - 1; k >= 0; k-- {
		y = y*x + f.Coef[k]
	}
	return y
}

// PolyFit fits a polynomial of the given degree (1 or 2) to the points by
// least squares (normal equations, Gaussian elimination with partial
// pivoting). It needs len(xs) == len(ys) and at least degree+1 distinct xs.
func PolyFit(xs, ys []float64, degree int) (Fit, error) {
	if degree < 1 || degree > 2 {
		return Fit{}, fmt.Errorf("fit: degree %d, want 1 or 2", degree)
	}
	if len(xs) != len(ys) {
		return Fit{}, fmt.Errorf("fit: %d x values for %d y values", len(xs), len(ys))
	}
	d := slices.Clone(xs)
	slices.Sort(d)
	if len(slices.Compact(d)) < degree+1 {
		return Fit{}, fmt.Errorf("fit: degree %d needs %d distinct x values, have %d", degree, degree+1, len(slices.Compact(d)))
	}
	n := degree + 1
	// normal equations A c = b with A[i][j] = sum x^(i+j), b[i] = sum y x^i
	a := make([][]float64, n)
	for i := range a {
		a[i] = make([]float64, n+1)
	}
	for k, x := range xs {
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				a[i][j] += math.Pow(x, float64(i+j))
			}
			a[i][n] += ys[k] * math.Pow(x, float64(i))
		}
	}
	for col := 0; col < n; col++ {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		if a[p][col] == 0 {
			return Fit{}, errors.New("fit: singular system")
		}
		a[col], a[p] = a[p], a[col]
		for r := 0; r < n; r++ {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for c := col; c <= n; c++ {
				a[r][c] -= f * a[col][c]
			}
		}
	}
	f := Fit{Coef: make([]float64, n)}
	for i := 0; i < n; i++ {
		f.Coef[i] = a[i][n] / a[i][i]
	}
	mean := 0.0
	for _, y := range ys {
		mean += y
	}
	mean /= float64(len(ys))
	var ssRes, ssTot float64
	for k, x := range xs {
		e := ys[k] - f.At(x)
		ssRes += e * e
		ssTot += (ys[k] - mean) * (ys[k] - mean)
	}
	switch {
	case ssTot > 0:
		f.R2 = 1 - ssRes/ssTot
	case ssRes == 0:
		f.R2 = 1
	default:
		f.R2 = 0
	}
	return f, nil
}

// Growth is how one mode's setup time grows (from the medians).
type Growth struct {
	Mode string
	// MinSites and MaxSites are the smallest and largest N measured.
	MinSites, MaxSites int
	// TunnelPerTunnel fits tunnel_creation_ms = c0 + c1 * tunnels (c1 in ms per tunnel).
	TunnelPerTunnel Fit
	// SetupLinear and SetupQuadratic fit setup_ms against N with degree 1
	// and 2 (the lines drawn on the plot).
	SetupLinear, SetupQuadratic Fit
	// Tunnel, Population and Setup describe how tunnel creation, state
	// population and the setup time grow with N (zero values with fewer
	// than 3 distinct N).
	Tunnel, Population, Setup Shape
}

// Shape is a quadratic fit y = c0 + c1 N + c2 N^2 of one phase against the
// number of sites N, and its classification.
type Shape struct {
	InN Fit
	// QuadraticShare is the part of the fitted rise of y from the smallest
	// to the largest N contributed by the N^2 term:
	// c2 (Nmax^2 - Nmin^2) / (fit(Nmax) - fit(Nmin)). About 0 for linear
	// growth; >= 1 for y = a + s N(N-1)/2 (the N term is then negative).
	QuadraticShare float64
	// Growth is "linear" if QuadraticShare < 0.5, else "quadratic"; ""
	// when fewer than 3 site counts were measured.
	Growth string
}

// shapeOf fits ys against ns (see Shape).
func shapeOf(ns, ys []float64, lo, hi int) Shape {
	q, err := PolyFit(ns, ys, 2)
	if err != nil {
		return Shape{}
	}
	sh := Shape{InN: q, Growth: "linear"}
	l, h := float64(lo), float64(hi)
	if rise := q.At(h) - q.At(l); rise != 0 {
		sh.QuadraticShare = q.Coef[2] * (h*h - l*l) / rise
	}
	if sh.QuadraticShare >= 0.5 {
		sh.Growth = "quadratic"
	}
	return sh
}

// String formats the fit and the verdict, e.g. "11.3 -3.23 N +1.981 N^2
// (R2 1.000), quadratic share 1.10 -> QUADRATIC in N".
func (sh Shape) String() string {
	if sh.Growth == "" {
		return "too few site counts for a shape"
	}
	c := sh.InN.Coef
	return fmt.Sprintf("%.1f %+.2f N %+.3f N^2 (R2 %.3f), quadratic share %.2f -> %s in N",
		c[0], c[1], c[2], sh.InN.R2, sh.QuadraticShare, strings.ToUpper(sh.Growth))
}

// Analysis is the growth of every mode.
type Analysis struct {
	Modes []Growth
}

// Analyze fits the medians (see Growth). Modes with fewer than 2 distinct
// site counts are skipped; an error is returned only when nothing can be
// fitted.
func Analyze(meds []Median) (Analysis, error) {
	var an Analysis
	byMode := map[string][]Median{}
	var modes []string
	for _, m := range meds {
		if _, ok := byMode[m.Mode]; !ok {
			modes = append(modes, m.Mode)
		}
		byMode[m.Mode] = append(byMode[m.Mode], m)
	}
	slices.SortFunc(modes, func(a, b string) int { return modeOrder(a) - modeOrder(b) })
	for _, mode := range modes {
		ms := byMode[mode]
		var ns, ts, tun, pop, setup []float64
		g := Growth{Mode: mode, MinSites: ms[0].Sites, MaxSites: ms[0].Sites}
		for _, m := range ms {
			ns = append(ns, float64(m.Sites))
			ts = append(ts, float64(m.Tunnels))
			tun = append(tun, m.TunnelCreationMS)
			pop = append(pop, m.PopulationMS)
			setup = append(setup, m.SetupMS)
			g.MinSites, g.MaxSites = min(g.MinSites, m.Sites), max(g.MaxSites, m.Sites)
		}
		var err error
		if g.TunnelPerTunnel, err = PolyFit(ts, tun, 1); err != nil {
			continue
		}
		g.SetupLinear, _ = PolyFit(ns, setup, 1)
		g.SetupQuadratic, _ = PolyFit(ns, setup, 2)
		g.Tunnel = shapeOf(ns, tun, g.MinSites, g.MaxSites)
		g.Population = shapeOf(ns, pop, g.MinSites, g.MaxSites)
		g.Setup = shapeOf(ns, setup, g.MinSites, g.MaxSites)
		an.Modes = append(an.Modes, g)
	}
	if len(an.Modes) == 0 {
		return an, errors.New("analyze: every mode needs at least 2 distinct site counts")
	}
	return an, nil
}

// Summary returns the analysis as text lines: per mode the tunnel
// creation cost per tunnel, then the shape in N of tunnel creation, state
// population and the setup time.
func (an Analysis) Summary() []string {
	var out []string
	for _, g := range an.Modes {
		out = append(out, fmt.Sprintf("%s (N=%d..%d): tunnel creation %.2f ms/tunnel %+.0f ms (R2 %.3f); setup time linear fit R2 %.3f, quadratic fit R2 %.3f",
			g.Mode, g.MinSites, g.MaxSites, g.TunnelPerTunnel.Coef[1], g.TunnelPerTunnel.Coef[0], g.TunnelPerTunnel.R2,
			g.SetupLinear.R2, g.SetupQuadratic.R2))
		if g.Setup.Growth != "" {
			out = append(out, fmt.Sprintf("%s: tunnel_creation_ms = %s", g.Mode, g.Tunnel),
				fmt.Sprintf("%s: state_population_ms = %s", g.Mode, g.Population),
				fmt.Sprintf("%s: setup_ms = %s", g.Mode, g.Setup))
		}
	}
	return out
}
