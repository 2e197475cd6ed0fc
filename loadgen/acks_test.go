package loadgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadAcksRejectsMalformedLines(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":          "{\"portal\":\n",
		"no digest":         `{"portal":"http://a","identifier":"MB2G"}` + "\n",
		"no identifier":     `{"portal":"http://a","digest":"x"}` + "\n",
		"a line over 1 MiB": `{"portal":"` + strings.Repeat("a", 1<<20) + `"}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "acks")
			os.WriteFile(path, []byte(body), 0o644)
			if _, err := ReadAcks(path); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestAcksWrittenAreReadBackAndAppendedTo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acks.jsonl")
	at := time.Date(2026, 11, 28, 23, 40, 1, 0, time.UTC)
	want := []Write{
		{Portal: "http://127.0.0.1:8080", Kind: KindCreateAccount, Account: "a@example.com", Identifier: "MB2G-A", Digest: "d1", Time: at},
		{Portal: "http://127.0.0.1:8081", Kind: KindPublish, Account: "a@example.com", Identifier: "MB2G-A", Digest: "d2", Time: at},
	}
	for _, w := range want { // two runs, each appending one write
		a, err := openAckWriter(path)
		if err != nil {
			t.Fatal(err)
		}
		a.add(w)
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadAcks(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("read back %+v, want %+v", got, want)
	}
}
