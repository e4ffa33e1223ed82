package setuptime

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }

func TestPolyFitExact(t *testing.T) {
	xs := []float64{2, 3, 4, 6, 8, 12, 16}
	lin, quad := make([]float64, len(xs)), make([]float64, len(xs))
	for i, x := range xs {
		lin[i] = 5 + 2*x
		quad[i] = 1 - 3*x + 0.5*x*x
	}
	f, err := PolyFit(xs, lin, 1)
	if err != nil || !near(f.Coef[0], 5) || !near(f.Coef[1], 2) || !near(f.R2, 1) {
		t.Fatalf("linear: %+v %v", f, err)
	}
	f, err = PolyFit(xs, quad, 2)
	if err != nil || !near(f.Coef[0], 1) || !near(f.Coef[1], -3) || !near(f.Coef[2], 0.5) || !near(f.R2, 1) {
		t.Fatalf("quadratic: %+v %v", f, err)
	}
	if !near(f.At(10), 1-30+50) {
		t.Fatalf("At(10) = %v", f.At(10))
	}
	// a line cannot fit a parabola perfectly
	if f, _ := PolyFit(xs, quad, 1); f.R2 >= 0.99 {
		t.Fatalf("line through parabola has R2 %v", f.R2)
	}
}

func TestPolyFitNoisy(t *testing.T) {
	xs := []float64{1, 2, 3, 4}
	ys := []float64{1, 3, 2, 4}
	f, err := PolyFit(xs, ys, 1)
	// least squares: slope 0.8, intercept 0.5, R2 = 1 - 1.8/5 = 0.64
	if err != nil || !near(f.Coef[1], 0.8) || !near(f.Coef[0], 0.5) || !near(f.R2, 0.64) {
		t.Fatalf("%+v %v", f, err)
	}
}

func TestPolyFitErrors(t *testing.T) {
	for _, c := range []struct {
		xs, ys []float64
		deg    int
		want   string
	}{
		{[]float64{1, 2}, []float64{1}, 1, "x values"},
		{[]float64{1, 1, 1}, []float64{1, 2, 3}, 1, "distinct"},
		{[]float64{1, 2, 2}, []float64{1, 2, 3}, 2, "distinct"},
		{[]float64{1, 2, 3}, []float64{1, 2, 3}, 3, "degree"},
	} {
		if _, err := PolyFit(c.xs, c.ys, c.deg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PolyFit(%v, %v, %d): %v, want error with %q", c.xs, c.ys, c.deg, err, c.want)
		}
	}
}

// synthetic returns medians for N in DefaultSites, both modes, with tunnel
// creation = base + perTunnel * tunnels and state population = 2 N (linear
// in the hosts), so the mesh's setup time is quadratic in N.
func synthetic(perTunnel, base float64) []Median {
	var out []Median
	for _, n := range DefaultSites() {
		for _, mode := range []string{ModeMST, ModeMesh} {
			tn := TunnelCount(mode, n)
			tc := base + perTunnel*float64(tn)
			pop := 2 * float64(n)
			out = append(out, Median{Sites: n, VMs: 1, Mode: mode, Tunnels: tn, Hosts: n, Runs: 1,
				TunnelCreationMS: tc, ControllerMS: pop / 2, ReachabilityMS: pop / 2, PopulationMS: pop, SetupMS: tc + pop})
		}
	}
	return out
}

func TestAnalyzeShapes(t *testing.T) {
	an, err := Analyze(synthetic(10, 50))
	if err != nil {
		t.Fatal(err)
	}
	if len(an.Modes) != 2 || an.Modes[0].Mode != ModeMST || an.Modes[1].Mode != ModeMesh {
		t.Fatalf("modes: %+v", an.Modes)
	}
	mst, mesh := an.Modes[0], an.Modes[1]
	if mst.Tunnel.Growth != "linear" || mesh.Tunnel.Growth != "quadratic" || mst.Setup.Growth != "linear" || mesh.Setup.Growth != "quadratic" {
		t.Fatalf("shapes: mst %+v %+v, mesh %+v %+v", mst.Tunnel, mst.Setup, mesh.Tunnel, mesh.Setup)
	}
	if mst.Population.Growth != "linear" || mesh.Population.Growth != "linear" {
		t.Fatalf("population: %+v %+v", mst.Population, mesh.Population)
	}
	if !near(mst.TunnelPerTunnel.Coef[1], 10) || !near(mesh.TunnelPerTunnel.Coef[1], 10) || !near(mesh.TunnelPerTunnel.Coef[0], 50) {
		t.Fatalf("slopes: %+v %+v", mst.TunnelPerTunnel, mesh.TunnelPerTunnel)
	}
	// mesh: 50 + 10 N(N-1)/2 = 50 - 5N + 5N^2
	if c := mesh.Tunnel.InN.Coef; !near(c[0], 50) || !near(c[1], -5) || !near(c[2], 5) {
		t.Fatalf("mesh in N: %+v", mesh.Tunnel.InN)
	}
	// linear: share 0; mesh 50-5N+5N^2 from 2 to 16: 5*252 / (1250-60) = 1.0588
	if math.Abs(mst.Tunnel.QuadraticShare) > 1e-6 || !near(mesh.Tunnel.QuadraticShare, 1260.0/1190) {
		t.Fatalf("shares %v %v", mst.Tunnel.QuadraticShare, mesh.Tunnel.QuadraticShare)
	}
	if !near(mst.SetupLinear.R2, 1) || mesh.SetupLinear.R2 >= 0.99 || !near(mesh.SetupQuadratic.R2, 1) {
		t.Fatalf("setup fits: mst %+v, mesh %+v %+v", mst.SetupLinear, mesh.SetupLinear, mesh.SetupQuadratic)
	}
	if mst.MinSites != 2 || mst.MaxSites != 16 {
		t.Fatalf("range %d..%d", mst.MinSites, mst.MaxSites)
	}
	s := strings.Join(an.Summary(), "\n")
	for _, want := range []string{"mst (N=2..16)", "mst: tunnel_creation_ms = ", "-> LINEAR in N", "mesh: setup_ms = ",
		"mst: state_population_ms = ", "tunnel creation 10.00 ms/tunnel", "-> QUADRATIC in N"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func TestAnalyzeTooFewPoints(t *testing.T) {
	if _, err := Analyze([]Median{{Sites: 2, Mode: ModeMST, Tunnels: 1}}); err == nil {
		t.Fatal("one point analyzed")
	}
	// two site counts: per-tunnel fits but no shape
	an, err := Analyze([]Median{{Sites: 2, Mode: ModeMST, Tunnels: 1, TunnelCreationMS: 1}, {Sites: 3, Mode: ModeMST, Tunnels: 2, TunnelCreationMS: 2}})
	if err != nil || an.Modes[0].Setup.Growth != "" || !near(an.Modes[0].TunnelPerTunnel.Coef[1], 1) {
		t.Fatalf("%+v %v", an, err)
	}
}
