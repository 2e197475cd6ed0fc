package testnet

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/intermesh/intermesh/portal/client"
)

// promKeywords are PromQL words that are not metric names.
var promKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\([^)]*\)`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promNumbers   = regexp.MustCompile(`(?i)\b[0-9][0-9.]*(?:e[+-]?[0-9]+)?\b`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	exposedMetric = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`)
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, "")
	e = promMatchers.ReplaceAllString(e, "")
	e = promGrouping.ReplaceAllString(e, "")
	e = promRanges.ReplaceAllString(e, "")
	e = promNumbers.ReplaceAllString(e, "")
	var out []string
	for _, m := range promIdent.FindAllStringSubmatch(e, -1) {
		name := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[0]), "("))
		if m[1] != "" || slices.Contains(promKeywords, name) {
			continue // a function call or a keyword
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesReadsOnlyTheMetricsOfAnExpression(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (instance, le) (rate(a_seconds_bucket{transaction="Publish",status=~"2.."}[5m]))) / on (x) b_total + 1e18 - c`)
	if want := []string{"a_seconds_bucket", "b_total", "c"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// deployExpressions reads every PromQL expression of the Grafana dashboard
// and the Prometheus alert rules in deploy/.
func deployExpressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile("../deploy/grafana/intermesh.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/intermesh.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out["dashboard panel "+p.Title+": "+tg.Expr] = tg.Expr
		}
	}
	b, err = os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert rule %+v lacks a name, expression, severity or summary", r)
			}
			out["alert "+r.Alert+": "+r.Expr] = r.Expr
			alerts++
		}
	}
	if len(dash.Panels) < 10 || alerts < 5 {
		t.Fatalf("%d dashboard panels and %d alert rules: the files were not read as meant", len(dash.Panels), alerts)
	}
	return out
}

func TestEveryMetricOfTheDashboardAndAlertsIsOnARunningNode(t *testing.T) {
	exprs := deployExpressions(t)
	tn := startTestnet(t, 3)
	c, err := client.New(tn.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	entry, _, key, err := NewProfile()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateAccountWith(t.Context(), c, "metrics@example.com", entry, key); err != nil {
		t.Fatal(err)
	}
	waitForAgreement(t, tn, 30*time.Second, 3)

	var missing []string
	err = WaitFor(t.Context(), 30*time.Second, "every referenced metric on /metrics", func() bool {
		resp, err := http.Get(tn.PortalURL(0) + "/metrics")
		if err != nil {
			return false
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return false
		}
		exposed := map[string]bool{}
		for _, m := range exposedMetric.FindAllStringSubmatch(string(b), -1) {
			exposed[m[1]] = true
		}
		missing = missing[:0]
		for where, e := range exprs {
			for _, name := range metricNames(e) {
				if !exposed[name] {
					missing = append(missing, name+" (in "+where+")")
				}
			}
		}
		return len(missing) == 0
	})
	if err != nil {
		sort.Strings(missing)
		t.Fatalf("%v; not on /metrics:\n  %s", err, strings.Join(missing, "\n  "))
	}
}
