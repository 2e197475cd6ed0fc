// Package keyfile reads and writes the files of meshctl's keystore: files
// only their owner may read or write (mode 0600, in directories of mode
// 0700). A new file is never written over an old one; a replaced file is
// replaced atomically; a file that others could read is refused.
package keyfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The modes of keystore directories and files: nothing in a keystore is
// readable by anyone but its owner.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// Errors, matched with errors.Is.
var (
	// ErrExists: WriteNew refuses to overwrite a file.
	ErrExists = errors.New("already exists in the keystore")
	// ErrNotExist: the file to read is not there.
	ErrNotExist = errors.New("not in the keystore")
	// ErrInsecure: the file to read is readable or writable by others.
	ErrInsecure = errors.New("keystore file is accessible by other users")
)

// WriteNew writes a new file (mode 0600), refusing to overwrite one with
// an ErrExists error.
func WriteNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keystore: refusing to overwrite %s: %w", path, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("keystore: writing %s: %w", path, err)
	}
	return nil
}

// Replace atomically replaces (or creates) a file with mode 0600: it
// writes a temporary file in the same directory, then renames it.
func Replace(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(FileMode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("keystore: writing %s: %w", path, err)
	}
	return nil
}

// Read reads a file, refusing one that others may read or write (an
// ErrInsecure error, as ssh does with private keys); a missing file is an
// ErrNotExist error.
func Read(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keystore: %s: %w", path, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keystore: %s has mode %04o (run chmod 600 on it): %w", path, fi.Mode().Perm(), ErrInsecure)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	return b, nil
}

// WriteJSON writes v as indented JSON, as a new file (WriteNew) or
// replacing one (Replace).
func WriteJSON(path string, v any, replace bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("keystore: encoding %s: %w", path, err)
	}
	b = append(b, '\n')
	if replace {
		return Replace(path, b)
	}
	return WriteNew(path, b)
}

// ReadJSON reads a JSON file into v with Read.
func ReadJSON(path string, v any) error {
	b, err := Read(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("keystore: %s: %w", path, err)
	}
	return nil
}
