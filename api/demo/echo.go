package demo

import "github.com/gin-gonic/gin"

// echo is GET /echo: every text frame comes back as text and every binary frame as binary,
// unchanged. A client that sends faster than it reads is slowed down, not cut: the reader waits
// for room in the connection's bounded queue, so TCP pushes back on the sender.
func (d *Demos) echo(c *gin.Context) {
	if !d.precheck(c) {
		return
	}
	d.serve(c, handler{
		name: "/echo",
		onMessage: func(cn *conn, kind int, data []byte) {
			cn.push(outFrame{kind: kind, data: data})
		},
	})
}
