package node

import (
	"fmt"
	"net"
	"strings"
)

// resolveAdvertise turns ":PORT" into "<first non-loopback IP>:PORT", so a
// container or pod can advertise the address its peers reach it at without
// knowing it ahead of time. Other addresses are returned as they are.
func resolveAdvertise(addr string) (string, error) {
	if !strings.HasPrefix(addr, ":") {
		return addr, nil
	}
	ip, err := firstIP()
	if err != nil {
		return "", fmt.Errorf("advertise %s: %w", addr, err)
	}
	return net.JoinHostPort(ip, strings.TrimPrefix(addr, ":")), nil
}

func firstIP() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return n.IP.String(), nil
			}
		}
	}
	return "", fmt.Errorf("no non-loopback IPv4 address on this host")
}
