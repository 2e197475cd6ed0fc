//go:build !linux

package log

import (
	"errors"
	"fmt"
)

// pageout is Linux only.
func pageout(mapping) (bool, error) {
	return false, fmt.Errorf("MADV_PAGEOUT: %w", errors.ErrUnsupported)
}
