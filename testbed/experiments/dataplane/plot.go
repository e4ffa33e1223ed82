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

// Plot draws ss as a PNG (about 1200x1000 px) in three panels, one group
// of bars per point (Label): median RTT (ms), median TCP throughput
// (Mbit/s), plain vs virtualized side by side; and the overheads in
// percent (RTT overhead and throughput loss). caption is added to the
// first title.
func Plot(w io.Writer, ss []Summary, caption string) error {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = Label(s.Point)
	}
	plain := color.RGBA{R: 31, G: 119, B: 180, A: 255}
	virt := color.RGBA{R: 214, G: 39, B: 40, A: 255}
	width := vg.Points(11)
	panel := func(title, ylabel string, a, b []float64, an, bn string, ca, cb color.Color) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.Add(plotter.NewGrid())
		ba, err := plotter.NewBarChart(values(a), width)
		if err != nil {
			return nil, err
		}
		bb, err := plotter.NewBarChart(values(b), width)
		if err != nil {
			return nil, err
		}
		ba.Color, bb.Color = ca, cb
		ba.LineStyle.Width, bb.LineStyle.Width = 0, 0
		ba.Offset, bb.Offset = -width/2, width/2
		p.Add(ba, bb)
		p.Legend.Add(an, ba)
		p.Legend.Add(bn, bb)
		lo, hi := 0.0, 0.0
		for _, v := range append(values(a), values(b)...) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		p.Y.Min, p.Y.Max = lo*1.15, hi*1.35+1e-9 // headroom for the legend
		p.Legend.Top, p.Legend.Left = true, true
		p.NominalX(names...)
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		return p, nil
	}
	var prtt, vrtt, pmb, vmb, ortt, otp []float64
	for _, s := range ss {
		prtt, vrtt = append(prtt, s.PlainRTTMS), append(vrtt, s.VirtRTTMS)
		pmb, vmb = append(pmb, s.PlainMbps), append(vmb, s.VirtMbps)
		ortt, otp = append(ortt, s.RTTOverheadPct), append(otp, s.TputOverheadPct)
	}
	title := "Ping RTT across clouds"
	if caption != "" {
		title += " (" + caption + ")"
	}
	p1, err := panel(title, "RTT (ms)", prtt, vrtt, "not virtualized (plain)", "virtualized (Skyvisor)", plain, virt)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p2, err := panel("iperf3 TCP throughput across clouds, one stream", "Mbit/s", pmb, vmb, "not virtualized (plain)", "virtualized (Skyvisor)", plain, virt)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p3, err := panel("Overhead of virtualization", "%", ortt, otp, "RTT overhead (virt - plain) / plain", "throughput loss (plain - virt) / plain",
		color.RGBA{R: 255, G: 127, B: 14, A: 255}, color.RGBA{R: 44, G: 160, B: 44, A: 255})
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	rows := [][]*plot.Plot{{p1}, {p2}, {p3}}
	img := vgimg.New(vg.Points(900), vg.Points(780))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 3, PadTop: vg.Millimeter * 2,
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
