package testnet

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal"
)

// chromium finds the Chromium executable: $CHROMIUM, or chromium or
// chromium-browser on PATH (Debian's package "chromium"; .ci/run installs
// it).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the status page test needs Chromium: apt-get install chromium (or set CHROMIUM to its path)")
	return ""
}

// browser starts a headless Chromium for the test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// pageState is what a person sees on the status page, read in the browser.
type pageState struct {
	Members     []string // grid rows
	Columns     int      // rounds in the header
	CellsPerRow []int
	// MissingRed is how many cells of the watched member read "miss" on a
	// red background.
	MissingRed int
	// Banner is the text of the evidence banner, if it is shown.
	Banner string
	// Health is the headline's text and HealthClass its class.
	Health, HealthClass string
}

const readPage = `(() => {
  const rows = [...document.querySelectorAll('#grid tr[data-member]')];
  const watched = document.querySelector('#grid tr[data-member="' + WATCHED + '"]');
  const red = watched ? [...watched.querySelectorAll('td')].filter(td =>
      td.innerText.trim() === 'miss' && getComputedStyle(td).backgroundColor === 'rgb(229, 57, 53)').length : 0;
  const banner = document.querySelector('#evidence');
  const health = document.querySelector('#health');
  return {
    Health: health ? health.innerText : '',
    HealthClass: health ? health.className : '',

    Members: rows.map(r => r.dataset.member),
    Columns: document.querySelectorAll('#grid tr:first-child th').length - 1,
    CellsPerRow: rows.map(r => r.querySelectorAll('td').length),
    MissingRed: red,
    Banner: banner && banner.offsetParent !== null ? banner.innerText : '',
  };
})()`

func readStatusPage(t *testing.T, ctx context.Context, watched string) pageState {
	t.Helper()
	js := strings.Replace(readPage, "WATCHED", `"`+watched+`"`, 1)
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](js))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestTheStatusPageShowsTheGridARedCellForAMissingMemberAndTheEvidenceBanner(t *testing.T) {
	ctx := browser(t)
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 30*time.Second, 4)
	watched := tn.opts.Origin(3)

	// Node 3 misses rounds: the others certify without it.
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	s := node.Schedule{Period: tn.Period()}
	stopped := s.Round(time.Now())
	waitForAgreement(t, tn, 30*time.Second, 3)
	if err := WaitFor(t.Context(), 20*time.Second, "two rounds certified without node 3", func() bool {
		return s.Round(time.Now()) >= stopped+3
	}); err != nil {
		t.Fatal(err)
	}

	url := tn.PortalURL(0) + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#grid")); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	st := readStatusPage(t, ctx, watched)
	if len(st.Members) != 4 || st.Members[3] != watched {
		t.Fatalf("grid rows %v, want the 4 members", st.Members)
	}
	if st.Columns < 3 || st.Columns > 30 {
		t.Errorf("the grid shows %d rounds, want between 3 and 30", st.Columns)
	}
	for i, n := range st.CellsPerRow {
		if n != st.Columns {
			t.Errorf("row %d has %d cells for %d rounds", i, n, st.Columns)
		}
	}
	if st.MissingRed == 0 {
		t.Errorf("no red 'miss' cell for %s, which missed rounds", watched)
	}
	if st.Banner != "" {
		t.Errorf("an evidence banner before any equivocation: %q", st.Banner)
	}
	// The headline says who is missing, and since when.
	if !strings.HasPrefix(st.Health, "Degraded") || !strings.Contains(st.Health, watched) || !strings.Contains(st.HealthClass, "h-degraded") {
		t.Errorf("the headline with a member down: %q (class %q)", st.Health, st.HealthClass)
	}

	// Node 3 comes back with its log rolled back (its data wiped): it signs
	// a checkpoint that contradicts one it signed before. The page, left
	// open, shows the banner once its refresh script has fetched it.
	c, err := config.Load(tn.opts.NodeDir(3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.DataDir()); err != nil {
		t.Fatal(err)
	}
	if err := tn.StartNode(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	err = WaitFor(t.Context(), 60*time.Second, "the evidence banner on the open page", func() bool {
		st = readStatusPage(t, ctx, watched)
		return strings.Contains(st.Banner, watched)
	})
	if err != nil {
		ev, _ := tn.Node(0).Evidence(t.Context())
		t.Fatalf("%v; node 0 holds evidence %v", err, evidenceOrigins(ev))
	}
	if !strings.Contains(st.Banner, "signed two checkpoints") || strings.Count(st.Banner, watched+"\n") < 2 {
		t.Errorf("the banner does not show both notes:\n%s", st.Banner)
	}
}

func evidenceOrigins(es []portal.Evidence) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Origin+": "+e.Reason)
	}
	return out
}
