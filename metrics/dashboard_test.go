package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/postoffice-mail/postoffice/pop3server"
)

// families gathers a fresh registry's metric families, every series
// created, by name.
func families(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	m := New()
	m.POP3.InitLogins(pop3server.MechanismUser)
	m.WatchPool(func() PoolStats { return PoolStats{Max: 20} })
	gathered, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily)
	for _, f := range gathered {
		out[f.GetName()] = f
	}
	return out
}

// labelNames returns the label names of a family's series, plus those
// Prometheus adds when it scrapes.
func labelNames(f *dto.MetricFamily, suffix string) []string {
	names := []string{"instance", "job"}
	if suffix == "_bucket" {
		names = append(names, "le")
	}
	if len(f.GetMetric()) > 0 {
		for _, l := range f.GetMetric()[0].GetLabel() {
			names = append(names, l.GetName())
		}
	}
	return names
}

var (
	metricName = regexp.MustCompile(`\b(?:postoffice|go|process)_[a-z0-9_]+`)
	selector   = regexp.MustCompile(`\b((?:postoffice|go|process)_[a-z0-9_]+)\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byClause   = regexp.MustCompile(`\bby \(([^)]*)\)`)
)

// dashboardQueries returns every PromQL text of the dashboard: the panels'
// expressions and the template variables' queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../contrib/grafana/postoffice.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("contrib/grafana/postoffice.json: %v", err)
	}
	var queries []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(e, k)
			}
		case []any:
			for _, e := range v {
				walk(e, key)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				queries = append(queries, v)
			}
		}
	}
	walk(doc, "")
	return queries
}

// resolve finds the family a name in a query refers to: itself, or the
// histogram whose _bucket, _count or _sum it is.
func resolve(fams map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, string) {
	if f, ok := fams[name]; ok {
		return f, ""
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				return f, suffix
			}
		}
	}
	return nil, ""
}

// TestDashboardMatchesMetrics is the drift check between the Grafana
// dashboard and the registry: every metric a query names exists, with
// the labels the query selects and groups by, and every postoffice_
// metric is on the dashboard.
func TestDashboardMatchesMetrics(t *testing.T) {
	fams := families(t)
	queries := dashboardQueries(t)
	if len(queries) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(queries))
	}
	used := map[string]bool{}
	for _, q := range queries {
		var labels []string // the labels of the metrics this query names
		for _, name := range metricName.FindAllString(q, -1) {
			f, suffix := resolve(fams, name)
			if f == nil {
				t.Errorf("dashboard query names %s, which the registry does not have:\n  %s", name, q)
				continue
			}
			used[f.GetName()] = true
			labels = append(labels, labelNames(f, suffix)...)
		}
		for _, sel := range selector.FindAllStringSubmatch(q, -1) {
			f, suffix := resolve(fams, sel[1])
			if f == nil {
				continue // reported above
			}
			for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
				if !slices.Contains(labelNames(f, suffix), m[1]) {
					t.Errorf("dashboard selects label %q of %s, which has no such label:\n  %s", m[1], sel[1], q)
				}
			}
		}
		for _, by := range byClause.FindAllStringSubmatch(q, -1) {
			for _, l := range strings.Split(by[1], ",") {
				if l = strings.TrimSpace(l); !slices.Contains(labels, l) {
					t.Errorf("dashboard groups by %q, a label of none of the metrics in:\n  %s", l, q)
				}
			}
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, namespace+"_") && !used[name] {
			t.Errorf("%s is not on the dashboard (contrib/grafana/postoffice.json)", name)
		}
	}
}

// TestDocsListEveryMetric: docs/metrics.md names every postoffice_
// metric, and names none that does not exist.
func TestDocsListEveryMetric(t *testing.T) {
	fams := families(t)
	data, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for name := range fams {
		if strings.HasPrefix(name, namespace+"_") && !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/metrics.md does not list %s", name)
		}
	}
	for _, name := range metricName.FindAllString(doc, -1) {
		if !strings.HasPrefix(name, namespace+"_") {
			continue
		}
		if f, _ := resolve(fams, name); f == nil {
			t.Errorf("docs/metrics.md names %s, which the registry does not have", name)
		}
	}
}
