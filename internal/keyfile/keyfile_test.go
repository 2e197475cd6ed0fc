package keyfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteNewRefusesToOverwriteAndReplaceReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteJSON(path, map[string]int{"a": 1}, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(path, []byte("{}")); !errors.Is(err, ErrExists) {
		t.Fatalf("WriteNew over a file: %v, want ErrExists", err)
	}
	if err := WriteJSON(path, map[string]int{"a": 2}, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if err := ReadJSON(path, &got); err != nil || got["a"] != 2 {
		t.Fatalf("ReadJSON after Replace: %v, %v; want a=2", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != FileMode {
		t.Errorf("replaced file has mode %04o, want %04o", fi.Mode().Perm(), FileMode)
	}
}

func TestReadRefusesAMissingFileAndOneOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "none")); !errors.Is(err, ErrNotExist) {
		t.Errorf("Read of a missing file: %v, want ErrNotExist", err)
	}
	path := filepath.Join(dir, "open.key")
	if err := os.WriteFile(path, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); !errors.Is(err, ErrInsecure) {
		t.Errorf("Read of a 0644 file: %v, want ErrInsecure", err)
	}
}
