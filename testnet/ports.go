package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// Ports FreeBasePort chooses from: below Linux's default ephemeral range
// (32768–60999), from which the kernel picks the local ports of outgoing
// connections, so that a busy client on the machine cannot take them
// between the check and the bind.
const (
	minBasePort = 10000
	maxBasePort = 32768
)

// FreeBasePort returns a base port p such that TCP ports p..p+n-1 and UDP
// ports p..p+n-1 on 127.0.0.1 were all free when it looked, avoiding
// exclude (another base already handed out for n ports). Tests use it to
// run testnets side by side; the ports can still be taken by another
// listener before the nodes bind them.
func FreeBasePort(n int, exclude ...int) (int, error) {
	if n < 1 || n > maxBasePort-minBasePort {
		return 0, fmt.Errorf("testnet: %d ports asked for", n)
	}
	for attempt := 0; attempt < 100; attempt++ {
		base := minBasePort + rand.IntN(maxBasePort-minBasePort-n+1)
		if overlaps(base, n, exclude) || !portsFree(base, n) {
			continue
		}
		return base, nil
	}
	return 0, fmt.Errorf("testnet: found no %d free consecutive ports", n)
}

func overlaps(base, n int, exclude []int) bool {
	for _, e := range exclude {
		if base < e+n && e < base+n {
			return true
		}
	}
	return false
}

func portsFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		l.Close()
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}
