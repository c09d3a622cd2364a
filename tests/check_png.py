#!/usr/bin/env python3
"""check_png.py PNG W H: decodes a PNG with the standard library only (zlib + struct, all five
row filters) and exits 0 when it is W x H and not blank (>= 1% of the pixels differ from the most
common colour and there are >= 8 colours). Used by the report tests on Chromium screenshots."""
import sys, zlib, struct, collections
path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = open(path, 'rb').read()
assert b[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG signature'
pos, idat, hdr = 8, [], None
while pos < len(b):
    n, t = struct.unpack('>I4s', b[pos:pos + 8]); data = b[pos + 8:pos + 8 + n]
    assert zlib.crc32(t + data) & 0xffffffff == struct.unpack('>I', b[pos + 8 + n:pos + 12 + n])[0], 'bad CRC in ' + repr(t)
    pos += 12 + n
    if t == b'IHDR': hdr = struct.unpack('>IIBBBBB', data)
    elif t == b'IDAT': idat.append(data)
    elif t == b'IEND': break
w, h, depth, ctype, _, _, inter = hdr
assert (w, h) == (want_w, want_h), 'size %dx%d, wanted %dx%d' % (w, h, want_w, want_h)
assert depth == 8 and ctype in (2, 6) and inter == 0, 'unsupported PNG kind %s' % (hdr,)
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(b''.join(idat)); stride = w * bpp
assert len(raw) == h * (stride + 1), 'wrong decompressed size'
counts, prev, p = collections.Counter(), bytearray(stride), 0
for y in range(h):
    f = raw[p]; line = bytearray(raw[p + 1:p + 1 + stride]); p += 1 + stride
    assert f <= 4, 'bad filter %d' % f
    if f:
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0; c = prev[i - bpp] if i >= bpp else 0; up = prev[i]
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + up) & 255
            elif f == 3: line[i] = (line[i] + ((a + up) >> 1)) & 255
            else:
                pa, pb, pc = abs(up - c), abs(a - c), abs(a + up - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
    row = bytes(line)
    counts.update(row[i:i + 3] for i in range(0, stride, bpp))
    prev = line
bg, nbg = counts.most_common(1)[0]
frac = 1 - nbg / (w * h)
print('%dx%d, background #%s, %.2f%% of pixels differ from it, %d distinct colours' % (w, h, bg.hex(), 100 * frac, len(counts)))
sys.exit(0 if frac >= 0.01 and len(counts) >= 8 else 1)
