package mesh

import (
	"strings"
	"testing"
	"time"
)

func TestProfileVersion(t *testing.T) {
	m := newTestMesh(t)
	id := m.offline.Public().UDF()
	first := entryOf(t, m.profile, m.offline)
	gotID, updated, err := ProfileVersion(first)
	if err != nil || !gotID.Equal(id) || updated != nil {
		t.Fatalf("first version: %v %v %v, want %v, no Updated", gotID, updated, err, id)
	}
	when := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	m.profile.Updated = &when
	// Signed by the online key: the identifier is still the offline key's.
	next := entryOf(t, m.profile, m.online)
	gotID, updated, err = ProfileVersion(next)
	if err != nil || !gotID.Equal(id) || updated == nil || !updated.Equal(when) {
		t.Fatalf("update: %v %v %v, want %v at %v", gotID, updated, err, id, when)
	}
	req := &ConnectionRequest{ParentUDF: id.String()}
	for name, raw := range map[string][]byte{
		"empty":       nil,
		"not JSON":    []byte("{"),
		"two tags":    []byte(`{"ProfileMesh":[{},"",{}],"ProfileHost":[{},"",{}]}`),
		"not profile": entryOf(t, req, m.offline),
		"bad payload": []byte(`{"ProfileMesh":[{},"AAAA",{}]}`),
		"no key":      entryOf(t, &ProfileHost{}, m.offline),
	} {
		if _, _, err := ProfileVersion(raw); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: an empty error", name)
		}
	}
}
