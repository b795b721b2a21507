package nodecmd

import (
	"fmt"
	"sync"
)

// DefaultOutputLimit bounds what is kept of each of a command's stdout and
// stderr. An installer can print megabytes; phoenix keeps enough to report.
const DefaultOutputLimit = 1 << 20

// Capture is an io.Writer that keeps at most a limit of what is written to
// it: the first half and the last half, with a marker where the middle was
// dropped. The head holds what a probe prints; the tail holds the error an
// installer ends with.
type Capture struct {
	mu      sync.Mutex
	half    int
	head    []byte
	tail    []byte // ring buffer once full
	pos     int    // next write position in tail once full
	full    bool
	dropped int64
}

// NewCapture keeps up to limit bytes; limit <= 0 means DefaultOutputLimit.
func NewCapture(limit int) *Capture {
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	half := max(limit/2, 1)
	return &Capture{half: half, head: make([]byte, 0, min(half, 4096))}
}

// Write never fails, so a chatty command is never blocked or killed by
// phoenix running out of room.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if room := c.half - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		if !c.full {
			k := min(c.half-len(c.tail), len(p))
			c.tail = append(c.tail, p[:k]...)
			p = p[k:]
			if len(c.tail) == c.half {
				c.full = true
			}
			continue
		}
		// Overwrite the oldest bytes of the tail.
		k := min(c.half-c.pos, len(p))
		copy(c.tail[c.pos:], p[:k])
		c.dropped += int64(k)
		c.pos = (c.pos + k) % c.half
		p = p[k:]
	}
	return n, nil
}

// String returns what was kept, with a marker line where bytes were dropped.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped == 0 {
		return string(c.head) + string(c.tail)
	}
	tail := append(append([]byte(nil), c.tail[c.pos:]...), c.tail[:c.pos]...)
	return fmt.Sprintf("%s\n[phoenix: %d bytes of output dropped]\n%s", c.head, c.dropped, tail)
}

// Truncated reports whether bytes were dropped.
func (c *Capture) Truncated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped > 0
}
