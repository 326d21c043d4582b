package bench

import (
	"fmt"
	"image/color"
	"io"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// fleetBins counts token requests per window, from the start of the run to
// end: bin i holds those that arrived in [i*window, (i+1)*window).
func fleetBins(toks []TokenRequest, window, end time.Duration) []int {
	n := int((end + window - 1) / window)
	bins := make([]int, max(n, 1))
	for _, t := range toks {
		i := int(t.At / window)
		if i >= len(bins) {
			bins = append(bins, make([]int, i+1-len(bins))...)
		}
		bins[i]++
	}
	return bins
}

// zeroAt is where an empty bin is drawn on the logarithmic axis, labelled
// 0: a log scale has no zero, and an empty bin is the point of the figure.
const zeroAt = 0.5

// WriteFleetFigure draws token requests per window over time, one panel
// per run, on one time axis and one logarithmic count axis, with each
// run's outage shaded, and writes it as SVG.
func WriteFleetFigure(w io.Writer, cfg FleetConfig, rs []FleetResult) error {
	if len(rs) == 0 {
		return fmt.Errorf("bench: no fleet run to draw")
	}
	end, most := time.Duration(0), 1
	bins := make([][]int, len(rs))
	for i, r := range rs {
		end = max(end, r.End)
		bins[i] = fleetBins(r.Tokens, cfg.Window, r.End)
		for _, b := range bins[i] {
			most = max(most, b)
		}
	}
	top := max(10, 1.6*float64(most))
	ticks := plot.ConstantTicks{{Value: zeroAt, Label: "0"}}
	for v := 1.0; v <= top; v *= 10 {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprint(v)})
	}

	var xticks plot.ConstantTicks
	for sec := 0; sec <= int(end.Seconds()); sec++ {
		t := plot.Tick{Value: float64(sec)}
		if sec%2 == 0 {
			t.Label = fmt.Sprint(sec)
		}
		xticks = append(xticks, t)
	}

	plots := make([][]*plot.Plot, len(rs))
	for i, r := range rs {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %s token requests in the %s outage (shaded); then at most %d per %s",
			r.Label(), count(r.OutageTokenRequests), human(cfg.Outage), r.RecoveryBusiest, human(cfg.Window))
		p.Title.TextStyle.Font.Size = vg.Points(9.5)
		p.X.Min, p.X.Max = 0, end.Seconds()
		p.X.Tick.Marker = xticks
		p.Y.Min, p.Y.Max = zeroAt, top
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = ticks
		p.Y.Label.Text = "per " + human(cfg.Window)
		p.Y.Label.TextStyle.Font.Size = vg.Points(9)
		if i == len(rs)-1 {
			p.X.Label.Text = "seconds from the first process's start"
		}
		p.Add(plotter.NewGrid())

		outage, err := plotter.NewPolygon(plotter.XYs{
			{X: r.DownAt.Seconds(), Y: zeroAt}, {X: r.UpAt.Seconds(), Y: zeroAt},
			{X: r.UpAt.Seconds(), Y: top}, {X: r.DownAt.Seconds(), Y: top},
		})
		if err != nil {
			return err
		}
		outage.Color = color.RGBA{R: 250, G: 210, B: 210, A: 255}
		outage.LineStyle.Width = 0

		xys := make(plotter.XYs, 0, len(bins[i])+1)
		for j, b := range bins[i] {
			y := float64(b)
			if b == 0 {
				y = zeroAt
			}
			xys = append(xys, plotter.XY{X: (time.Duration(j) * cfg.Window).Seconds(), Y: y})
		}
		// The last bin drawn to its end.
		xys = append(xys, plotter.XY{X: (time.Duration(len(bins[i])) * cfg.Window).Seconds(), Y: xys[len(xys)-1].Y})
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		line.StepStyle = plotter.PostStep
		line.Color = peerColor(r.Peer)
		line.Width = vg.Points(1)
		p.Add(outage, line)
		plots[i] = []*plot.Plot{p}
	}

	c := vgsvg.New(8*vg.Inch, vg.Length(len(rs))*2.2*vg.Inch)
	// Every panel has the same axes and tick labels, so that their plot
	// areas line up without plot.Align, which leaves room above each for
	// the rotated axis label.
	tiles := draw.Tiles{Rows: len(rs), Cols: 1, PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	dc := draw.New(c)
	for i := range plots {
		plots[i][0].Draw(tiles.At(dc, 0, i))
	}
	_, err := c.WriteTo(w)
	return err
}

func peerColor(name string) color.Color {
	switch name {
	case ProxyAuth.Name:
		return color.RGBA{R: 0, G: 90, B: 180, A: 255}
	case XOAuth2.Name:
		return color.RGBA{R: 200, G: 80, B: 0, A: 255}
	case Azcore.Name:
		return color.RGBA{R: 0, G: 140, B: 70, A: 255}
	}
	return color.Black
}
