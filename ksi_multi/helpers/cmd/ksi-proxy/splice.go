package main

import (
	"errors"
	"io"
	"log"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// proxy holds what egress and ingress share: the bound on connections in
// flight (memory per connection is bounded: two goroutines and splice pipes)
// and counters.
type proxy struct {
	dialTimeout time.Duration
	slots       chan struct{}
	active      atomic.Int64
	total       atomic.Int64
	refused     atomic.Int64
}

// tidy returns idle resources once no connection is in flight: splice(2)
// keeps a pool of pipes (two fds each) that only garbage collection closes,
// and a quiet process may not collect for minutes.
func (p *proxy) tidy() {
	seen := int64(-1)
	for range time.Tick(5 * time.Second) {
		total := p.total.Load()
		if p.active.Load() == 0 && total != seen {
			for i := 0; i < 3; i++ { // the pool's victim cache, then the pipes' finalizers
				runtime.GC()
			}
			seen = total
		}
	}
}

// accept serves ln with handle, one goroutine per connection, at most
// cap(slots) at once (more are reset at once).
func (p *proxy) accept(ln *net.TCPListener, handle func(*net.TCPConn)) error {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(50 * time.Millisecond) // out of fds for a moment: back off, do not spin
				continue
			}
			return err
		}
		select {
		case p.slots <- struct{}{}:
		default:
			reset(c)
			continue
		}
		p.active.Add(1)
		p.total.Add(1)
		go func() {
			defer func() { p.active.Add(-1); <-p.slots }()
			handle(c)
		}()
	}
}

// refuse answers a connection whose far side could not be reached: the
// client's connect() was already answered by our listener, so a reset at once
// is the prompt failure it can see (never a hang).
func (p *proxy) refuse(c *net.TCPConn, err error) {
	if n := p.refused.Add(1); n <= 10 || n%1000 == 0 {
		log.Printf("%v (%d refused so far)", err, n)
	}
	reset(c)
}

// splice copies both directions (io.Copy between TCP sockets is splice(2) on
// Linux), passes a half-close on, and turns an error on either side into a
// reset of both.
func splice(a, b *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		half(b, a)
		close(done)
	}()
	half(a, b)
	<-done
	a.Close()
	b.Close()
}

func half(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		reset(dst)
		reset(src)
		return
	}
	dst.CloseWrite()
}

func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
