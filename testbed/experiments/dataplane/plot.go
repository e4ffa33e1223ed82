package dataplane

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Label is the short name of a point on the plot's x axis: "vxlan 10ms",
// "+wg" appended with WireGuard.
func Label(p Point) string {
	s := fmt.Sprintf("%s %gms", p.Tunnel, p.DelayMS)
	if p.WireGuard {
		s += " +wg"
	}
	return s
}

// series is one bar series of a panel.
type series struct {
	name string
	vals []float64
	c    color.Color
}

// Plot draws ss as a PNG (about 1200x1330 px) in four panels, one group
// of bars per point (Label): median RTT (ms) and median TCP throughput
// (Mbit/s) of the modes side by side (direct, plain, virtualized; a mode
// without any measurement is left out), the RTT overhead and the
// throughput loss of the virtualized mode in percent against direct (the
// paper's comparison) and against plain (the pipeline alone). caption is
// added to the first title.
func Plot(w io.Writer, ss []Summary, caption string) error {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = Label(s.Point)
	}
	cDirect := color.RGBA{R: 127, G: 127, B: 127, A: 255}
	cPlain := color.RGBA{R: 31, G: 119, B: 180, A: 255}
	cVirt := color.RGBA{R: 214, G: 39, B: 40, A: 255}
	cVsDirect := color.RGBA{R: 255, G: 127, B: 14, A: 255}
	cVsPlain := color.RGBA{R: 44, G: 160, B: 44, A: 255}
	panel := func(title, ylabel string, all []series) (*plot.Plot, error) {
		var ser []series
		for _, x := range all {
			for _, v := range x.vals {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					ser = append(ser, x)
					break
				}
			}
		}
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.Add(plotter.NewGrid())
		width := vg.Points(27 / float64(max(len(ser), 1)))
		lo, hi := 0.0, 0.0
		for k, x := range ser {
			bc, err := plotter.NewBarChart(values(x.vals), width)
			if err != nil {
				return nil, err
			}
			bc.Color = x.c
			bc.LineStyle.Width = 0
			bc.Offset = width * vg.Length(float64(k)-float64(len(ser)-1)/2)
			p.Add(bc)
			p.Legend.Add(x.name, bc)
			for _, v := range values(x.vals) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		p.Y.Min, p.Y.Max = lo*1.15, hi*1.45+1e-9 // headroom for the legend
		p.Legend.Top, p.Legend.Left = true, true
		p.NominalX(names...)
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		return p, nil
	}
	col := func(f func(Summary) float64) []float64 {
		out := make([]float64, len(ss))
		for i, s := range ss {
			out[i] = f(s)
		}
		return out
	}
	title := "Ping RTT across clouds"
	if caption != "" {
		title += " (" + caption + ")"
	}
	const (
		nDirect = "not virtualized, no tunnel (direct)"
		nPlain  = "not virtualized, tunnel (plain)"
		nVirt   = "virtualized (Skyvisor)"
	)
	var rows [][]*plot.Plot
	for _, pn := range []struct {
		title, ylabel string
		ser           []series
	}{
		{title, "RTT (ms)", []series{
			{nDirect, col(func(s Summary) float64 { return s.DirectRTTMS }), cDirect},
			{nPlain, col(func(s Summary) float64 { return s.PlainRTTMS }), cPlain},
			{nVirt, col(func(s Summary) float64 { return s.VirtRTTMS }), cVirt}}},
		{"iperf3 TCP throughput across clouds, one stream", "Mbit/s", []series{
			{nDirect, col(func(s Summary) float64 { return s.DirectMbps }), cDirect},
			{nPlain, col(func(s Summary) float64 { return s.PlainMbps }), cPlain},
			{nVirt, col(func(s Summary) float64 { return s.VirtMbps }), cVirt}}},
		{"RTT overhead of virtualization", "%", []series{
			{"(virt - direct) / direct: tunnels + pipeline", col(func(s Summary) float64 { return s.RTTOverheadDirectPct }), cVsDirect},
			{"(virt - plain) / plain: pipeline alone", col(func(s Summary) float64 { return s.RTTOverheadPct }), cVsPlain}}},
		{"Throughput loss of virtualization", "%", []series{
			{"(direct - virt) / direct: tunnels + pipeline", col(func(s Summary) float64 { return s.TputOverheadDirectPct }), cVsDirect},
			{"(plain - virt) / plain: pipeline alone", col(func(s Summary) float64 { return s.TputOverheadPct }), cVsPlain}}},
	} {
		p, err := panel(pn.title, pn.ylabel, pn.ser)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		rows = append(rows, []*plot.Plot{p})
	}
	img := vgimg.New(vg.Points(900), vg.Points(1000))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 3, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// values replaces NaN (a mode not measured) by 0 for the bar charts.
func values(xs []float64) plotter.Values {
	out := make(plotter.Values, len(xs))
	for i, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out[i] = x
		}
	}
	return out
}
