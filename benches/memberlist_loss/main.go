// memberlist-loss: real hashicorp/memberlist (v0.2.2, Debian package) under random
// packet loss, with Lifeguard on and off: the reference for the false-positive figure
// of BENCHMARKS.md ("Gossip", false positives).
//
// N members run in one process on 127.0.0.1 (ports -port+i), with memberlist's LAN
// profile sped up -speed times (every interval and timeout divided by it, so the
// protocol's ratios are kept). They join n0; once every member lists all N, a
// transport wrapper drops each outgoing UDP packet with probability -loss, and fails
// an outgoing TCP connection when its SYN or SYN-ACK is lost (each with that
// probability; Linux retransmits them only after 1 s, past the probe's deadline). An
// established connection loses nothing. After -minutes of protocol
// time (minutes/speed of wall time) it prints one line:
//
//	lifeguard=<on|off> loss=<p> lag=<d> n=<N> minutes=<m> suspicions=<s> deaths=<d> dead-members=<k>
//
// where suspicions counts probes that got no ack ("Suspect X has failed,
// no acks received" in memberlist's log) and deaths the suspicions that timed out
// ("Marking X as failed, suspect timeout reached"), one per member whose timer fired;
// dead-members counts the distinct members so marked. Nobody really fails, so all of
// them are false (-v prints each timeout and refutation). With -lag D (and, say, -loss 0), member n0 instead handles every
// packet and connection D late (an overloaded member), and suspicions and deaths of n0
// itself are not counted: only those of the healthy members.
//
// Build and run (GOPATH mode, no network needed):
//
//	cd benches/memberlist_loss && GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/mlloss .
//	/tmp/mlloss -loss 0.2 -lifeguard=true
//	/tmp/mlloss -loss 0 -lag 1.5s -lifeguard=false
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/rand"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	lossy      int32 // set once the cluster has formed
	suspicions int64
	// Suspicions and deaths of the degraded member itself (-lag), counted apart.
	ownSuspicions int64
	ownDeaths     int64
	deaths        int64
	randMu        sync.Mutex
	random        = rand.New(rand.NewSource(1))
	loss          float64
	synTimeout    time.Duration
	// Members whose suspicion timed out at one member or more (distinct names).
	deadMu      sync.Mutex
	deadMembers = map[string]bool{}
	// -v: each suspicion timeout and refutation on stderr, in protocol time.
	verbose   bool
	lossStart time.Time
	speedUp   int
)

func drop() bool {
	if atomic.LoadInt32(&lossy) == 0 {
		return false
	}
	randMu.Lock()
	defer randMu.Unlock()
	return random.Float64() < loss
}

// lossyTransport drops outgoing packets and connections at random.
type lossyTransport struct {
	*memberlist.NetTransport
}

// memberlist v0.2 sends through the node-aware methods (WriteToAddress,
// DialAddressTimeout) when the transport has them, as NetTransport does.
func (t lossyTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if drop() {
		return time.Now(), nil // sent, as far as the sender can tell
	}
	return t.NetTransport.WriteToAddress(b, a)
}

// A connection fails when its SYN or the SYN-ACK is lost (each as a packet is); the
// dialer then waits for Linux's first SYN retransmission (1 s), as swarmlab's model does.
func (t lossyTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if drop() || drop() {
		wait := synTimeout
		if timeout < wait {
			wait = timeout
		}
		time.Sleep(wait)
		return nil, errors.New("connection timed out (SYN lost)")
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// laggingTransport hands over every incoming packet and connection `lag` late, in
// order, and reads its own connections late: a member too busy to process gossip in
// time.
type laggingTransport struct {
	lossyTransport
	packets chan *memberlist.Packet
	streams chan net.Conn
	lag     time.Duration
}

func newLagging(inner lossyTransport, lag time.Duration) *laggingTransport {
	t := &laggingTransport{inner, make(chan *memberlist.Packet), make(chan net.Conn), lag}
	type stamped struct {
		at time.Time
		p  *memberlist.Packet
		c  net.Conn
	}
	queue := make(chan stamped, 1<<16)
	go func() {
		for p := range inner.PacketCh() {
			queue <- stamped{time.Now(), p, nil}
		}
	}()
	go func() {
		for c := range inner.StreamCh() {
			queue <- stamped{time.Now(), nil, c}
		}
	}()
	go func() {
		for s := range queue {
			time.Sleep(time.Until(s.at.Add(lag)))
			if s.p != nil {
				t.packets <- s.p
			} else {
				t.streams <- s.c
			}
		}
	}()
	return t
}

// DialAddressTimeout's connections are read late too: replies on the member's own
// connections (the TCP fallback ping's ack, a push/pull's answer) wait like the rest.
func (t *laggingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.lossyTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &lagConn{Conn: c, lag: t.lag}, nil
}

// lagConn waits `lag` before each read, but not past the read deadline the member set:
// what has not been handled by then times out, as it would for the member itself (so a
// TCP fallback ping ends at the probe's deadline, as in swarmlab's model).
type lagConn struct {
	net.Conn
	lag      time.Duration
	deadline time.Time
}

func (c *lagConn) SetDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

func (c *lagConn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetReadDeadline(t)
}

func (c *lagConn) Read(b []byte) (int, error) {
	wait := c.lag
	if !c.deadline.IsZero() && time.Until(c.deadline) < wait {
		wait = time.Until(c.deadline)
	}
	time.Sleep(wait)
	return c.Conn.Read(b)
}

func (t *laggingTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *laggingTransport) StreamCh() <-chan net.Conn           { return t.streams }

// counter reads one member's log lines; suspicions of `ignore` (the degraded member
// itself) are not counted.
type counter struct {
	ignore string
	name   string // the member whose log this is
}

func (c counter) Write(p []byte) (int, error) {
	s := string(p)
	if strings.Contains(s, "has failed, no acks received") {
		if c.ignore != "" && strings.Contains(s, "Suspect "+c.ignore+" has failed") {
			atomic.AddInt64(&ownSuspicions, 1)
		} else {
			atomic.AddInt64(&suspicions, 1)
		}
	}
	if strings.Contains(s, "suspect timeout reached") && c.ignore != "" &&
		strings.Contains(s, "Marking "+c.ignore+" as failed") {
		atomic.AddInt64(&ownDeaths, 1)
	} else if strings.Contains(s, "suspect timeout reached") {
		atomic.AddInt64(&deaths, 1)
		if f := strings.Fields(s); len(f) > 3 && f[2] == "Marking" {
			deadMu.Lock()
			deadMembers[f[3]] = true
			deadMu.Unlock()
		}
	}
	if atomic.LoadInt32(&lossy) == 1 && verbose &&
		(strings.Contains(s, "suspect timeout reached") || strings.Contains(s, "Refuting")) {
		at := time.Since(lossStart) * time.Duration(speedUp)
		fmt.Fprintf(os.Stderr, "%8.2fs %s: %s", at.Seconds(), c.name, s)
	}
	return len(p), nil
}

func main() {
	n := flag.Int("n", 100, "members")
	flag.Float64Var(&loss, "loss", 0.2, "probability of losing each outgoing packet")
	lifeguard := flag.Bool("lifeguard", true, "Lifeguard on (memberlist's defaults) or off (awareness and max-timeout multipliers 1)")
	speed := flag.Int("speed", 5, "protocol time runs this many times faster than wall time")
	minutes := flag.Float64("minutes", 10, "protocol minutes of loss")
	base := flag.Int("port", 30000, "first member's port (n0); member i uses port+i")
	lag := flag.Duration("lag", 0, "member n0 handles every packet and connection this late (protocol time); its own suspicions are then not counted")
	flag.BoolVar(&verbose, "v", false, "print each suspicion timeout and refutation on stderr, in protocol time")
	flag.Parse()
	speedUp = *speed
	log.SetOutput(os.Stderr)
	sp := time.Duration(*speed)
	synTimeout = time.Second / sp

	members := make([]*memberlist.Memberlist, *n)
	for i := 0; i < *n; i++ {
		c := memberlist.DefaultLANConfig()
		c.Name = fmt.Sprintf("n%d", i)
		c.BindAddr = "127.0.0.1"
		c.BindPort = *base + i
		c.AdvertisePort = c.BindPort
		c.ProbeInterval /= sp
		c.ProbeTimeout /= sp
		c.GossipInterval /= sp
		c.GossipToTheDeadTime /= sp
		c.PushPullInterval /= sp
		c.TCPTimeout /= sp
		if !*lifeguard {
			c.AwarenessMaxMultiplier = 1
			c.SuspicionMaxTimeoutMult = 1
		}
		ignore := ""
		if *lag > 0 {
			ignore = "n0"
		}
		c.Logger = log.New(counter{ignore, c.Name}, "", 0)
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{c.BindAddr},
			BindPort:  c.BindPort,
			Logger:    log.New(ioutil.Discard, "", 0),
		})
		if err != nil {
			log.Fatalf("transport %d: %v", i, err)
		}
		c.Transport = lossyTransport{nt}
		if i == 0 && *lag > 0 {
			c.Transport = newLagging(lossyTransport{nt}, *lag/sp)
		}
		m, err := memberlist.Create(c)
		if err != nil {
			log.Fatalf("create %d: %v", i, err)
		}
		members[i] = m
		if i > 0 {
			if _, err := m.Join([]string{fmt.Sprintf("127.0.0.1:%d", *base)}); err != nil {
				log.Fatalf("join %d: %v", i, err)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		formed := true
		for _, m := range members {
			if m.NumMembers() != *n {
				formed = false
				break
			}
		}
		if formed {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("the cluster did not form within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	atomic.StoreInt64(&suspicions, 0)
	atomic.StoreInt64(&deaths, 0)
	atomic.StoreInt64(&ownSuspicions, 0)
	atomic.StoreInt64(&ownDeaths, 0)
	deadMu.Lock()
	deadMembers = map[string]bool{}
	deadMu.Unlock()
	lossStart = time.Now()
	atomic.StoreInt32(&lossy, 1)
	time.Sleep(time.Duration(*minutes * float64(time.Minute) / float64(*speed)))
	lg := "on"
	if !*lifeguard {
		lg = "off"
	}
	deadMu.Lock()
	dead := len(deadMembers)
	deadMu.Unlock()
	fmt.Printf("lifeguard=%s loss=%g lag=%v n=%d minutes=%g suspicions=%d deaths=%d dead-members=%d",
		lg, loss, *lag, *n, *minutes, atomic.LoadInt64(&suspicions), atomic.LoadInt64(&deaths), dead)
	if *lag > 0 {
		fmt.Printf(" n0-suspected=%d n0-dead=%d", atomic.LoadInt64(&ownSuspicions), atomic.LoadInt64(&ownDeaths))
	}
	fmt.Println()
	atomic.StoreInt32(&lossy, 0)
	for _, m := range members {
		m.Shutdown()
	}
}
