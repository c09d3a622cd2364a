#!/usr/bin/env python3
"""check_layout.py CHROMIUM HTML WIDTH: lays a pathens report out in headless Chromium at a window
WIDTH pixels wide and checks the geometry the browser computed (element bounding boxes), since a
screenshot cannot say what overlaps what:
  - nothing is wider than the window (no horizontal scrolling of the page), and no table is wider than
    the element that holds it (a wide table in an overflow box would be cut off or need scrolling);
  - in every inline SVG, no two text labels overlap, and no text outside a legend (<g class="legend">)
    overlaps that legend.
The report itself has no scripts; a copy with one measuring script appended is rendered with
--dump-dom, and the script writes its measurements into the DOM as JSON. Prints one line per
problem (or a summary) and exits 1 on any. Used by cli_report.sh and cli_sweep_report.sh."""
import json, os, re, subprocess, sys, tempfile

chromium, html_path, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
SCRIPT = r"""
<script>
(function () {
  var out = {page: {}, tables: [], svgs: []};
  var de = document.documentElement;
  out.page = {scrollWidth: de.scrollWidth, innerWidth: window.innerWidth};
  function box(e) { var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
  /* the four corners of a text's own box on the screen: rotated labels are quadrilaterals */
  function quad(t) {
    var b = t.getBBox(), m = t.getScreenCTM(), q = [];
    [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]].forEach(function (c) {
      var p = new DOMPoint(c[0], c[1]).matrixTransform(m);
      q.push([p.x, p.y]);
    });
    return q;
  }
  document.querySelectorAll('table').forEach(function (t, i) {
    var p = t.parentElement, cs = getComputedStyle(p);
    var pr = p.getBoundingClientRect();
    var inner = pr.right - parseFloat(cs.paddingRight) - parseFloat(cs.borderRightWidth);
    out.tables.push({index: i, cls: t.className, right: t.getBoundingClientRect().right, width: t.getBoundingClientRect().width,
                     parentInnerRight: inner, parentScroll: p.scrollWidth, parentClient: p.clientWidth});
  });
  document.querySelectorAll('svg').forEach(function (s, i) {
    var texts = [], legends = [];
    s.querySelectorAll('g.legend').forEach(function (g) { legends.push(box(g)); });
    s.querySelectorAll('text').forEach(function (t) {
      var r = box(t);
      if (r[2] - r[0] < 0.5 || (t.textContent || '').trim() === '') return;
      texts.push({text: t.textContent, box: r, quad: quad(t), inLegend: !!t.closest('g.legend')});
    });
    out.svgs.push({index: i, kind: s.getAttribute('data-plot') || '?', texts: texts, legends: legends});
  });
  var pre = document.createElement('pre');
  pre.id = 'pe-layout';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""

html = open(html_path, encoding='utf-8').read()
if '</body>' not in html:
    print('no </body> in %s' % html_path); sys.exit(1)
tmp = tempfile.mkdtemp(prefix='pe-layout.')
page = os.path.join(tmp, 'page.html')
with open(page, 'w', encoding='utf-8') as f:
    f.write(html.replace('</body>', SCRIPT + '</body>', 1))
prof = os.path.join(tmp, 'profile')
cmd = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
       '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
       '--user-data-dir=' + prof, '--window-size=%d,1600' % width, '--dump-dom', 'file://' + page]
try:
    dom = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=180).stdout.decode('utf-8', 'replace')
finally:
    subprocess.run(['rm', '-rf', tmp])
m = re.search(r'<pre id="pe-layout">(.*?)</pre>', dom, re.S)
if not m:
    print('chromium gave no measurements (script did not run?)'); sys.exit(1)
txt = m.group(1).replace('&lt;', '<').replace('&gt;', '>').replace('&quot;', '"').replace('&amp;', '&')
d = json.loads(txt)

errs = []
pg = d['page']
if pg['scrollWidth'] > pg['innerWidth'] + 1:
    errs.append('page is %dpx wide in a %dpx window (horizontal scrolling)' % (pg['scrollWidth'], pg['innerWidth']))
for t in d['tables']:
    if t['right'] > t['parentInnerRight'] + 1 or t['parentScroll'] > t['parentClient'] + 1:
        errs.append('table %d (%s) is %.0fpx wide and overflows its container by %.0fpx'
                    % (t['index'], t['cls'] or '-', t['width'], max(t['right'] - t['parentInnerRight'], t['parentScroll'] - t['parentClient'])))

def overlap(a, b, tol=0.5):
    return min(a[2], b[2]) - max(a[0], b[0]) > tol and min(a[3], b[3]) - max(a[1], b[1]) > tol

def quads_overlap(p, q, tol=0.5):
    """separating-axis test for two convex quadrilaterals (rotated text boxes): they overlap when no
    edge normal separates them by more than -tol"""
    for poly in (p, q):
        for i in range(4):
            (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % 4]
            nx, ny = y1 - y2, x2 - x1
            n = (nx * nx + ny * ny) ** 0.5
            if n == 0: continue
            nx, ny = nx / n, ny / n
            a = [x * nx + y * ny for x, y in p]; b = [x * nx + y * ny for x, y in q]
            if min(max(a), max(b)) - max(min(a), min(b)) <= tol: return False
    return True

n_pairs = 0
for s in d['svgs']:
    tx = s['texts']
    for i in range(len(tx)):
        for j in range(i + 1, len(tx)):
            n_pairs += 1
            if overlap(tx[i]['box'], tx[j]['box']) and quads_overlap(tx[i]['quad'], tx[j]['quad']):
                errs.append('svg %d (%s): labels overlap: %r and %r' % (s['index'], s['kind'], tx[i]['text'], tx[j]['text']))
        if not tx[i]['inLegend']:
            for lb in s['legends']:
                if overlap(tx[i]['box'], lb):
                    errs.append('svg %d (%s): label %r overlaps the legend' % (s['index'], s['kind'], tx[i]['text']))
for e in errs: print(e)
if not errs:
    print('layout at %dpx: page %dpx wide, %d tables fit, %d SVGs, %d label pairs, %d legends, no overlaps'
          % (width, pg['scrollWidth'], len(d['tables']), len(d['svgs']), n_pairs, sum(len(s['legends']) for s in d['svgs'])))
sys.exit(1 if errs else 0)
