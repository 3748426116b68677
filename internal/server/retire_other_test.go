//go:build !unix

package server

import "errors"

func shutdownRead(uintptr) error { return errors.ErrUnsupported }
