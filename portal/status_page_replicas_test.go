package portal

import (
	"strings"
	"testing"
)

// TestTheReplicasTableShowsEachRecomputedMap: the status page's replica
// rows show the map's records and root, "not opened" before the map is
// first used, "busy" for a replica being worked on, and the mismatches,
// marked when there are any.
func TestTheReplicasTableShowsEachRecomputedMap(t *testing.T) {
	root := "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
	for _, tc := range []struct {
		name     string
		replica  ReplicaStatus
		want     []string
		wantNone []string
	}{
		{"an opened map shows its records, its root and no mismatch",
			ReplicaStatus{Origin: "o/1", Size: 5, MapOpened: true, MapSize: 4, MapRoot: root},
			[]string{`<td class="map-size">4</td>`, `<td class="map-root"><code>` + root + `</code></td>`, `<td class="map-mismatches">0</td>`},
			[]string{"not opened", "busy</i>"}},
		{"a map not opened says so",
			ReplicaStatus{Origin: "o/1", Size: 5},
			[]string{`<td class="map-size" colspan="2"><i>not opened</i></td>`},
			[]string{`class="map-root"`}},
		{"mismatches are marked",
			ReplicaStatus{Origin: "o/1", MapOpened: true, MapRoot: root, MapMismatches: 3},
			[]string{`<td class="map-mismatches bad">3</td>`},
			nil},
		{"a busy replica shows its size and mismatches, and busy for the rest",
			ReplicaStatus{Origin: "o/1", Size: 9, Busy: true, MapMismatches: 1},
			[]string{`<td>9</td><td colspan="6" class="busy"><i>busy</i></td><td class="map-mismatches bad">1</td>`},
			[]string{"not opened", `class="map-size"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			d := &statusData{Federation: &FederationStatus{Replicas: []ReplicaStatus{tc.replica}}}
			page := struct {
				*statusData
				Path          string
				RefreshMillis int64
			}{d, WellKnownPath, 1000}
			if err := statusPage.Execute(&b, page); err != nil {
				t.Fatal(err)
			}
			_, table, _ := strings.Cut(b.String(), `<table id="replicas">`)
			table, _, _ = strings.Cut(table, "</table>")
			for _, w := range tc.want {
				if !strings.Contains(table, w) {
					t.Errorf("the replicas table lacks %s:\n%s", w, table)
				}
			}
			for _, w := range tc.wantNone {
				if strings.Contains(table, w) {
					t.Errorf("the replicas table has %s:\n%s", w, table)
				}
			}
		})
	}
}
