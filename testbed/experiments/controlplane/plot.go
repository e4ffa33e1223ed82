package controlplane

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// armStyle is the colour and glyph of an arm in the plots.
func armStyle(a string) (color.Color, draw.GlyphDrawer) {
	switch a {
	case ArmBare:
		return color.RGBA{R: 31, G: 119, B: 180, A: 255}, draw.CircleGlyph{}
	case ArmHypervisor:
		return color.RGBA{R: 214, G: 39, B: 40, A: 255}, draw.SquareGlyph{}
	case ArmOVS:
		return color.RGBA{R: 44, G: 160, B: 44, A: 255}, draw.TriangleGlyph{}
	case ArmOSKen:
		return color.RGBA{R: 255, G: 127, B: 14, A: 255}, draw.PlusGlyph{}
	}
	return color.Black, draw.CrossGlyph{}
}

// Plot draws three panels side by side (about 1500x500 px PNG), x = number
// of virtual networks (= switches) on a log2 scale: (a) the median latency
// per request of every arm (ms, log scale), as the paper's Figure 3; (b) the
// hypervisor's overhead over the bare learning switch (ms, log scale,
// values at or below 0.001 ms drawn at 0.001) with the paper's
// 0.1 ms bound and Skyvisor's 0.01 ms target as horizontal lines, and the
// range of the paired differences as error bars, beside the controller CPU
// time the hypervisor adds per request (Overhead.CPUOverheadUS, in ms); (c) responses/s of every
// arm (log scale). caption is appended to the first title.
func Plot(w io.Writer, ss []Summary, ohs []Overhead, caption string) error {
	var ns []float64
	seen := map[int]bool{}
	for _, s := range ss {
		if !seen[s.Networks] {
			seen[s.Networks] = true
			ns = append(ns, float64(s.Networks))
		}
	}
	xticks := func() plot.Ticker {
		var t []plot.Tick
		for _, n := range ns {
			t = append(t, plot.Tick{Value: n, Label: strconv.Itoa(int(n))})
		}
		return plot.ConstantTicks(t)
	}
	newPanel := func(title, ylabel string) *plot.Plot {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "virtual networks (= switches, 5 hosts each)"
		p.Y.Label.Text = ylabel
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = xticks()
		if len(ns) > 0 {
			p.X.Min, p.X.Max = ns[0]/1.2, ns[len(ns)-1]*1.2
		}
		p.Add(plotter.NewGrid())
		return p
	}
	perArm := func(p *plot.Plot, value func(Summary) float64) error {
		for _, a := range AllArms() {
			var xys plotter.XYs
			for _, s := range ss {
				if s.Arm == a && s.Reps > 0 && value(s) > 0 {
					xys = append(xys, plotter.XY{X: float64(s.Networks), Y: value(s)})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			c, g := armStyle(a)
			l.Color, pts.Color, pts.Shape = c, c, g
			p.Add(l, pts)
			p.Legend.Add(ArmLabel(a), l, pts)
		}
		p.Legend.Top, p.Legend.Left = true, true
		return nil
	}
	logY := func(p *plot.Plot, value func(Summary) float64) {
		lo, hi := math.Inf(1), 0.0
		for _, s := range ss {
			if v := value(s); s.Reps > 0 && v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		if hi > 0 {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
			p.Y.Min, p.Y.Max = lo/1.5, hi*6 // headroom for the legend
		}
	}

	title := "(a) latency per request"
	if caption != "" {
		title += " (" + caption + ")"
	}
	pa := newPanel(title, "ms per request (log)")
	lat := func(s Summary) float64 { return s.LatencyMS }
	if err := perArm(pa, lat); err != nil {
		return err
	}
	logY(pa, lat)

	pb := newPanel("(b) overhead of the hypervisor over the bare app", "ms per request (log; <= 0.001 drawn at 0.001)")
	// Log scale: the bounds (0.01, 0.1 ms) and the CPU overhead (µs) stay
	// readable next to the latency overhead of many switches (ms).
	// Overheads at or below overheadFloor (noise can make them negative)
	// are drawn at the floor.
	const overheadFloor = 0.001
	clamp := func(v float64) float64 { return math.Max(v, overheadFloor) }
	var ov plotter.XYs
	var bars plotter.YErrors
	hi := PaperOverheadMS
	for _, o := range ohs {
		y := clamp(o.OverheadMS)
		ov = append(ov, plotter.XY{X: float64(o.Networks), Y: y})
		hi = math.Max(hi, o.OverheadMS)
		e := struct{ Low, High float64 }{}
		if !math.IsNaN(o.PairedMinMS) {
			e.Low, e.High = y-clamp(o.PairedMinMS), math.Max(0, clamp(o.PairedMaxMS)-y)
			hi = math.Max(hi, o.PairedMaxMS)
		}
		bars = append(bars, e)
	}
	for _, ref := range []struct {
		y     float64
		label string
		c     color.Color
	}{
		{PaperOverheadMS, "paper: < 0.1 ms", color.RGBA{R: 120, G: 120, B: 120, A: 255}},
		{TargetOverheadMS, "Skyvisor target: < 0.01 ms", color.RGBA{R: 44, G: 160, B: 44, A: 255}},
	} {
		if len(ns) == 0 {
			break
		}
		l, err := plotter.NewLine(plotter.XYs{{X: ns[0] / 1.2, Y: ref.y}, {X: ns[len(ns)-1] * 1.2, Y: ref.y}})
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		l.Color = ref.c
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		pb.Add(l)
		pb.Legend.Add(ref.label, l)
	}
	if len(ov) > 0 {
		l, pts, err := plotter.NewLinePoints(ov)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		c, g := armStyle(ArmHypervisor)
		l.Color, pts.Color, pts.Shape = c, c, g
		pb.Add(l, pts)
		pb.Legend.Add("latency overhead (median; bars: paired runs)", l, pts)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{ov, bars})
		if err == nil {
			eb.Color = c
			pb.Add(eb)
		}
	}
	var cpu plotter.XYs
	for _, o := range ohs {
		if o.BareCPUUS > 0 && o.HypervisorCPUUS > 0 {
			cpu = append(cpu, plotter.XY{X: float64(o.Networks), Y: clamp(o.CPUOverheadUS / 1000)})
			hi = math.Max(hi, o.CPUOverheadUS/1000)
		}
	}
	if len(cpu) > 0 {
		l, pts, err := plotter.NewLinePoints(cpu)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		c := color.RGBA{R: 148, G: 103, B: 189, A: 255}
		l.Color, pts.Color, pts.Shape = c, c, draw.RingGlyph{}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		pb.Add(l, pts)
		pb.Legend.Add("controller CPU time added per request", l, pts)
	}
	pb.Y.Scale = plot.LogScale{}
	pb.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	pb.Y.Min, pb.Y.Max = overheadFloor/1.5, hi*20 // headroom for the legend
	pb.Legend.Top, pb.Legend.Left = true, true

	pc := newPanel("(c) controller throughput", "responses/s (log)")
	resp := func(s Summary) float64 { return s.RespPerSec }
	if err := perArm(pc, resp); err != nil {
		return err
	}
	logY(pc, resp)

	row := []*plot.Plot{pa, pb, pc}
	img := vgimg.New(vg.Points(1125), vg.Points(375))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for k := range row {
		row[k].Draw(canvases[0][k])
	}
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(w); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}
