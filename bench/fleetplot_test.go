package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFleetBins(t *testing.T) {
	toks := []TokenRequest{{At: 0}, {At: 99 * msec}, {At: 100 * msec}, {At: 350 * msec}, {At: 350 * msec}}
	got := fleetBins(toks, 100*msec, 500*msec)
	want := []int{2, 1, 0, 2, 0}
	if !slices.Equal(got, want) {
		t.Errorf("fleetBins = %v; want %v", got, want)
	}
	// A request after the end still counts.
	if got := fleetBins([]TokenRequest{{At: 250 * msec}}, 100*msec, 100*msec); !slices.Equal(got, []int{0, 0, 1}) {
		t.Errorf("fleetBins past the end = %v; want [0 0 1]", got)
	}
}

// svgPath is a path element of an SVG.
type svgPath struct {
	d, style string
}

// parseSVG decodes doc as XML, independently of the plotting library, and
// returns its root element's name, every path and the text of every text
// element.
func parseSVG(t *testing.T, doc []byte) (root string, paths []svgPath, texts []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the figure is not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			switch el.Name.Local {
			case "path":
				var p svgPath
				for _, a := range el.Attr {
					switch a.Name.Local {
					case "d":
						p.d = a.Value
					case "style":
						p.style = a.Value
					}
				}
				paths = append(paths, p)
			case "text":
				inText = true
				texts = append(texts, "")
			}
		case xml.EndElement:
			if el.Name.Local == "text" {
				inText = false
			}
		case xml.CharData:
			if inText {
				texts[len(texts)-1] += string(el)
			}
		}
	}
	return root, paths, texts
}

func TestWriteFleetFigure(t *testing.T) {
	cfg := DefaultFleet
	var rs []FleetResult
	for i, p := range Peers() {
		// Run i lasts 1 s + i*100 ms, the outage from 300 to 600 ms.
		r := FleetResult{Peer: p.Name, Processes: 200, DownAt: 300 * msec, UpAt: 600 * msec, End: time.Second + time.Duration(i)*100*msec,
			OutageTokenRequests: 1000 * (i + 1), RecoveryBusiest: 10 + i}
		for j := range 10 * (i + 1) {
			r.Tokens = append(r.Tokens, TokenRequest{At: 300*msec + time.Duration(j)*msec, Down: true, Status: 503})
		}
		rs = append(rs, r)
	}
	var buf bytes.Buffer
	if err := WriteFleetFigure(&buf, cfg, rs); err != nil {
		t.Fatal(err)
	}
	root, paths, texts := parseSVG(t, buf.Bytes())
	if root != "svg" {
		t.Fatalf("root element %q; want svg", root)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"proxyauth: 1,000 token requests in the 8 s outage (shaded); then at most 10 per 100 ms",
		"x/oauth2: 2,000 token requests in the 8 s outage (shaded); then at most 11 per 100 ms",
		"azcore: 3,000 token requests in the 8 s outage (shaded); then at most 12 per 100 ms",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no text %q in the figure; texts:\n%s", want, all)
		}
	}
	// One series per peer, in its colour: a step line through the start
	// of each bin and the end of the last, so 2*bins+1 vertices. Run i
	// has 10+i bins of 100 ms.
	for i, stroke := range []string{"stroke:#005AB4", "stroke:#C85000", "stroke:#008C46"} {
		var found []svgPath
		for _, p := range paths {
			if strings.Contains(p.style, stroke) {
				found = append(found, p)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d paths with %s; want 1", rs[i].Peer, len(found), stroke)
			continue
		}
		vertices := strings.Count(found[0].d, "M") + strings.Count(found[0].d, "L")
		if want := 2*(10+i) + 1; vertices != want {
			t.Errorf("%s: a series of %d vertices; want %d", rs[i].Peer, vertices, want)
		}
	}
	// The outage, shaded in each panel.
	shaded := 0
	for _, p := range paths {
		if strings.Contains(p.style, "fill:#FAD2D2") {
			shaded++
		}
	}
	if shaded != len(rs) {
		t.Errorf("%d shaded outages; want %d", shaded, len(rs))
	}

	if err := WriteFleetFigure(io.Discard, cfg, nil); err == nil {
		t.Error("a figure of no runs: no error")
	}
}
