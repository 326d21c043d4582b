package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// metrics counts what the gateway did, beside the transport's Stats.
type metrics struct {
	inFlight       atomic.Int64
	answered       atomic.Int64 // the upstream answered, whatever the status
	noToken        atomic.Int64
	upstreamErrors atomic.Int64
	clientGone     atomic.Int64
	refusedConnect atomic.Int64
	refusedAbs     atomic.Int64
	refusedHost    atomic.Int64
	refusedCross   atomic.Int64
	refusedKey     atomic.Int64
}

func (m *metrics) refused(reason string) {
	switch reason {
	case "connect":
		m.refusedConnect.Add(1)
	case "absolute_form":
		m.refusedAbs.Add(1)
	case "host":
		m.refusedHost.Add(1)
	case "cross_site":
		m.refusedCross.Add(1)
	case "local_key":
		m.refusedKey.Add(1)
	}
}

// serveMetrics writes the counters in the Prometheus text exposition
// format (version 0.0.4), which Prometheus, the OpenTelemetry collector,
// Datadog, Grafana Agent and Telegraf read. It is written by hand: the
// format is a few lines of text, and the command adds no dependency.
func (g *gateway) serveMetrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	st := g.tr.Stats()
	m := g.metrics
	var b strings.Builder
	family := func(name, typ, help string, samples ...sample) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, s := range samples {
			b.WriteString(name)
			if s.label != "" {
				fmt.Fprintf(&b, "{%s=%q}", s.label, s.value)
			}
			fmt.Fprintf(&b, " %d\n", s.n)
		}
	}
	family("proxyauth_token_fetches_total", "counter", "Token requests: calls of the credential.", sample{n: st.Fetches})
	family("proxyauth_token_fetch_errors_total", "counter", "Token requests that failed.", sample{n: st.FetchErrors})
	family("proxyauth_retries_total", "counter", "Requests resent with a new token after the upstream answered 401.", sample{n: st.Retries})
	family("proxyauth_requests_total", "counter", "Requests forwarded to the upstream, by outcome.",
		sample{"outcome", "answered", m.answered.Load()},
		sample{"outcome", "no_token", m.noToken.Load()},
		sample{"outcome", "upstream_error", m.upstreamErrors.Load()},
		sample{"outcome", "client_gone", m.clientGone.Load()})
	family("proxyauth_refused_requests_total", "counter", "Requests refused by the listener's rules, by reason.",
		sample{"reason", "connect", m.refusedConnect.Load()},
		sample{"reason", "absolute_form", m.refusedAbs.Load()},
		sample{"reason", "host", m.refusedHost.Load()},
		sample{"reason", "cross_site", m.refusedCross.Load()},
		sample{"reason", "local_key", m.refusedKey.Load()})
	family("proxyauth_in_flight_requests", "gauge", "Requests being forwarded now.", sample{n: m.inFlight.Load()})
	io.WriteString(w, b.String())
}

// sample is one line of a metric family: a value, with one label or none.
// Labels here are fixed words, so %q quotes them as the format wants.
type sample struct {
	label, value string
	n            int64
}
