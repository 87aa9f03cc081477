#!/usr/bin/env python3
"""httpd.py - a loopback HTTP(S) server that misbehaves on request, for the
URL source tests.

It serves the files of --root at /f/NAME with Content-Length, a strong ETag,
Last-Modified, Accept-Ranges and real Range / If-Range handling, and lets the
query string of each request pick a fault. A fault with times=K hits only
the first K requests of that exact URL (path + query), so a client that
resumes is served properly once the fault has run out.

  /f/NAME?cut=N        close the connection after N body bytes (a short body)
          &rst=1       ... with a TCP reset instead of a clean close
          &stall=N     stop after N body bytes and hold the connection open
          &hold=S      ... for S seconds (default 60)
          &fail=CODE   answer CODE instead of the file
          &times=K     apply cut/stall/fail only to the first K requests
          &need=H:V[,H2:V2]  answer 403 unless the request has these headers
          &change=1    after the first request, serve other bytes under
                       another ETag and Last-Modified (same length)
          &grow=N      after the first request, serve N more bytes (the
                       first ones unchanged) under another ETag
          &noranges=1  ignore Range (always 200, no Accept-Ranges)
          &noaccept=1  honour Range but send no Accept-Ranges
          &ignorerange=1  send Accept-Ranges: bytes, yet answer every
                       Range with the whole file (200)
          &novalidator=1  send neither ETag nor Last-Modified
          &startotal=1 a 206's Content-Range says "bytes A-B/*"
          &weak=1      a weak ETag only (useless for If-Range)
          &lmonly=1    Last-Modified only, no ETag
          &chunked=1   chunked encoding, no Content-Length
          &noend=1     ... and close without the last chunk (times applies)
  /redirect/N/NAME?Q   302 chain of N hops ending at /f/NAME?Q
  /loop/a, /loop/b     302 to each other forever
  /to?url=U            302 to U (any scheme)

Every request is logged to --log as one line:
  GET /f/x?cut=1 range=bytes=5- if-range="..." x-token=... -> 206
The port (bound on 127.0.0.1, chosen by the kernel) is written to --port-file
once the server listens. --tls CERT KEY serves https.
"""

import argparse
import email.utils
import hashlib
import http.server
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

COUNTS = {}
LOCK = threading.Lock()
ARGS = None


def hit(key):
    """Count a request of this URL; returns its 1-based number."""
    with LOCK:
        COUNTS[key] = COUNTS.get(key, 0) + 1
        return COUNTS[key]


def log(line):
    if ARGS.log:
        with LOCK:
            with open(ARGS.log, 'a') as f:
                f.write(line + '\n')


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'dsc-test-httpd/1'

    def log_message(self, fmt, *args):
        pass

    def note(self, status):
        extra = []
        for h in ('Range', 'If-Range', 'X-Token', 'X-Other'):
            v = self.headers.get(h)
            if v is not None:
                extra.append('%s=%s' % (h.lower(), v))
        log('%s %s %s -> %s' % (self.command, self.path, ' '.join(extra), status))

    def simple(self, code, body=b'', headers=()):
        self.note(code)
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = url.path.split('/')
        if url.path.startswith('/redirect/'):
            n = int(parts[2])
            name = '/'.join(parts[3:])
            nxt = ('/redirect/%d/%s' % (n - 1, name)) if n > 1 else ('/f/' + name)
            if url.query:
                nxt += '?' + url.query
            return self.simple(302, b'moved\n', [('Location', nxt)])
        if url.path in ('/loop/a', '/loop/b'):
            other = '/loop/b' if url.path.endswith('a') else '/loop/a'
            return self.simple(302, b'loop\n', [('Location', other)])
        if url.path == '/to':
            return self.simple(302, b'away\n', [('Location', q.get('url', '/'))])
        if not url.path.startswith('/f/'):
            return self.simple(404, b'no such path\n')
        self.serve_file(url.path[3:], q, self.path)

    def serve_file(self, name, q, key):
        n = hit(key)
        faulty = n <= int(q.get('times', '1000000000'))
        for need in filter(None, q.get('need', '').split(',')):
            h, v = need.split(':', 1)
            if self.headers.get(h) != v:
                return self.simple(403, b'missing header\n')
        if 'fail' in q and faulty:
            return self.simple(int(q['fail']), b'failure on request\n')
        path = os.path.join(ARGS.root, os.path.basename(name))
        try:
            with open(path, 'rb') as f:
                data = f.read()
            mtime = int(os.stat(path).st_mtime)
        except OSError:
            return self.simple(404, b'not found\n')
        gen = 1
        if q.get('change') and n > 1:
            gen = 2
            data = bytes(b ^ 0xff for b in data)
            mtime += 3600
        if q.get('grow') and n > 1:
            gen = 3
            data += bytes(int(q['grow']))
            mtime += 3600
        digest = hashlib.sha1(data).hexdigest()[:16]
        etag = '"%s-g%d"' % (digest, gen)
        lastmod = email.utils.formatdate(mtime, usegmt=True)
        headers = []
        if not q.get('novalidator'):
            if q.get('weak'):
                headers.append(('ETag', 'W/' + etag))
            elif not q.get('lmonly'):
                headers.append(('ETag', etag))
            headers.append(('Last-Modified', lastmod))
        if not q.get('noranges') and not q.get('noaccept'):
            headers.append(('Accept-Ranges', 'bytes'))
        size = len(data)
        start, end, status = 0, size, 200
        rng = self.headers.get('Range')
        if rng and not q.get('noranges') and not q.get('ignorerange'):
            ifr = self.headers.get('If-Range')
            valid = ifr is None or (ifr == etag and not q.get('weak') and not q.get('lmonly')
                                    and not q.get('novalidator')) or \
                (ifr == lastmod and not q.get('novalidator'))
            if valid and rng.startswith('bytes='):
                a, _, b = rng[6:].partition('-')
                start = int(a)
                end = min(int(b) + 1, size) if b else size
                if start >= size:
                    return self.simple(416, b'', [('Content-Range', 'bytes */%d' % size)])
                status = 206
                headers.append(('Content-Range', 'bytes %d-%d/%s' % (
                    start, end - 1, '*' if q.get('startotal') else size)))
        body = data[start:end]
        self.note(status)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        chunked = bool(q.get('chunked'))
        if chunked:
            self.send_header('Transfer-Encoding', 'chunked')
        else:
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command == 'HEAD':
            return
        cut = int(q['cut']) if 'cut' in q and faulty else None
        stall = int(q['stall']) if 'stall' in q and faulty else None
        limit = min(x for x in (cut, stall, len(body)) if x is not None)
        pos = 0
        while pos < limit:
            piece = body[pos:min(pos + 65536, limit)]
            if chunked:
                self.wfile.write(b'%x\r\n' % len(piece) + piece + b'\r\n')
            else:
                self.wfile.write(piece)
            pos += len(piece)
        self.wfile.flush()
        if stall is not None and stall < len(body):
            deadline = time.time() + float(q.get('hold', '60'))
            while time.time() < deadline:
                time.sleep(0.2)
            self.drop(False)
            return
        if cut is not None and cut < len(body):
            self.drop(bool(q.get('rst')))
            return
        if chunked and q.get('noend') and faulty:
            self.drop(False)
            return
        if chunked:
            self.wfile.write(b'0\r\n\r\n')

    def drop(self, reset):
        """End the connection in the middle of a response."""
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack('ii', 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--port-file', required=True)
    p.add_argument('--log')
    p.add_argument('--tls', nargs=2, metavar=('CERT', 'KEY'))
    ARGS = p.parse_args()
    srv = Server(('127.0.0.1', 0), Handler)
    if ARGS.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls[0], ARGS.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = ARGS.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % srv.server_address[1])
    os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    sys.exit(main())
