package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ingress keeps one listener on the host's address per forwarded NodePort.
type ingress struct {
	*proxy
	bind      string
	node      string
	dial      *dialer
	mu        sync.Mutex
	listeners map[int]*net.TCPListener
}

// set forwards exactly ports: listeners for new ones, closed for the rest.
// Each port's result is "ok" or why its listener could not be made.
func (in *ingress) set(ports []int) map[string]string {
	in.mu.Lock()
	defer in.mu.Unlock()
	want := map[int]bool{}
	for _, p := range ports {
		want[p] = true
	}
	for p, ln := range in.listeners {
		if !want[p] {
			ln.Close()
			delete(in.listeners, p)
			log.Printf("ingress: port %d closed", p)
		}
	}
	out := map[string]string{}
	for p := range want {
		if _, ok := in.listeners[p]; ok {
			out[strconv.Itoa(p)] = "ok"
			continue
		}
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.ParseIP(in.bind), Port: p})
		if err != nil {
			out[strconv.Itoa(p)] = err.Error()
			continue
		}
		in.listeners[p] = ln
		out[strconv.Itoa(p)] = "ok"
		log.Printf("ingress: %s:%d -> node %s:%d", in.bind, p, in.node, p)
		go in.accept(ln, func(c *net.TCPConn) {
			up, err := in.dial.Dial(net.JoinHostPort(in.node, strconv.Itoa(p)))
			if err != nil {
				in.refuse(c, fmt.Errorf("ingress: port %d: %w", p, err))
				return
			}
			splice(c, up)
		})
	}
	return out
}

func (in *ingress) forwarded() []int {
	in.mu.Lock()
	defer in.mu.Unlock()
	ports := []int{}
	for p := range in.listeners {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	return ports
}

// serveControl answers the control socket (mode 0600): one command a connection.
func (in *ingress) serveControl(path string) (net.Listener, error) {
	os.Remove(path)
	old := unix.Umask(0o077)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go in.command(c)
		}
	}()
	return ln, nil
}

func (in *ingress) command(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReaderSize(c, 1<<16).ReadString('\n')
	if err != nil {
		return
	}
	words := strings.Fields(line)
	var answer any
	switch {
	case len(words) > 0 && words[0] == "set":
		ports := []int{}
		for _, w := range words[1:] {
			p, err := strconv.Atoi(w)
			if err != nil || p < 1 || p > 65535 {
				answer = map[string]string{"error": fmt.Sprintf("bad port %q", w)}
				break
			}
			ports = append(ports, p)
		}
		if answer == nil {
			answer = in.set(ports)
		}
	case len(words) == 1 && words[0] == "stats":
		answer = map[string]any{"active": in.active.Load(), "refused": in.refused.Load(), "forwarded": in.forwarded()}
	default:
		answer = map[string]string{"error": "unknown command"}
	}
	json.NewEncoder(c).Encode(answer)
}
