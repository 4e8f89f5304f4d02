// conv2d, NHWC input, HWIO weights, implicit GEMM with an 8x16 register tile and no shared memory.
//
//   y[n,oy,ox,o] = sum_{ky,kx,c} x[n, oy*sh - pad_top + ky, ox*sw - pad_left + kx, c] * w[ky,kx,c,o]
//                  (taps outside the image read as 0: TF SAME/VALID or any explicit padding)
//   fused epilogue, in this order:
//     y += bias[o]                       (flags & 1)
//     y  = y * scale[o] + shift[o]       (flags & 2; inference batch norm folded to an affine)
//     y  = residual[n,oy,ox,o] + res_scale * y   (flags & 4)
//     y  = relu(y) (act 1) | max(y,0) + alpha[o]*min(y,0) (act 2, PReLU)
//   stored at channels [y_off, y_off + oc) of a y with y_c channels (y_c = oc, y_off = 0 but for a conv
//   writing its slice of a concatenation in place).
//
// Each invocation computes 8 output pixels x 16 consecutive channels in tile.wgsl's Tile (16 rather than
// 8: each x load then feeds twice the FMAs). The pixels are 8 consecutive flattened
// (n, oy, ox), or with row tiles (layout Rows: stride 1, at least 5 taps wide) 8 columns of one output row,
// whose input columns are loaded once per kernel row and slid across the taps (conv_rows).
// x and w are read as vec4s when c and oc are multiples of 4 (16-byte loads instead of scalar gathers:
// 10-20% faster on llvmpipe), else element by element through xs()/ws(). The lanes of a subgroup share
// their channels and their weight loads (share4/share1). The epilogue's per-channel operands are loaded
// once per tile, and y is stored as vec4s where oc is a multiple of 4.
//
// Entries: conv2d and conv2d_solo (one invocation per tile when tiles are fewer than a subgroup's
// lanes), and conv2d_splitk_finish. Shared declarations: conv2d_common.wgsl and tile.wgsl.

@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    conv_tiles(gid, nwg, sid, sgs, false); // subgroups
    conv_tiles(gid, nwg, 0u, 1u, false); // no subgroups
}

// conv2d for layers with fewer pixel tiles than a subgroup has lanes (the 3x3-pixel layers at batch 1):
// each lane takes its own tile and loads its own weights, instead of most lanes repeating the last pixel
// tile to share weights.
@compute @workgroup_size(64)
fn conv2d_solo(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    conv_tiles(gid, nwg, sid, sgs, true); // subgroups
    conv_tiles(gid, nwg, 0u, 1u, true); // no subgroups
}

fn conv_tiles(gid: vec3<u32>, nwg: vec3<u32>, sid: u32, sgs: u32, solo: bool) {
    let idx = gid.y * nwg.x * 64u + gid.x;
    let m_total = p.n * p.oh * p.ow;
    let tiles_n = (p.oc + cols() - 1u) / cols();
    // Pixel tiles: 8 consecutive flattened (n, oy, ox), or with layout Rows (stride-1 convs wider than one tap)
    // 8 consecutive columns of one output row, the last of a row ragged: the tile's taps along a row then
    // read overlapping input columns, which are loaded once (see below).
    let tiles_row = (p.ow + 7u) / 8u;
    let tiles_m = select((m_total + 7u) / 8u, p.n * p.oh * tiles_row, ROWS);
    // The lanes of one subgroup (`unit` invocations) share the column tile n0, so that they can share its
    // weights, and take consecutive row tiles. Lanes past the last row tile repeat it and store nothing:
    // every lane stays active for the shuffles.
    let unit = select(sgs, 1u, solo);
    let lane = sid & select(7u, 15u, LANES16);
    // Split-K (ksplits > 1, for layers with too few tiles to fill the machine): split `ks` takes input
    // channels [cbeg, cend) of every tap and leaves its sums in `part` for conv2d_splitk_finish.
    let per_split = tiles_n * ((tiles_m + unit - 1u) / unit);
    let ut = idx / unit;
    if (ut >= per_split * p.ksplits) {
        return;
    }
    let ks = ut / per_split;
    let u = ut % per_split;
    let cbeg = ks * p.kchunk;
    let cend = min(cbeg + p.kchunk, p.c);
    let mt = (u / tiles_n) * unit + idx % unit;
    let n0 = (u % tiles_n) * cols();
    var t: Tile;
    var t2: Tile;
    // Pixel r of the tile is output pixel m_store + r, stored if below `lim`.
    var m_store = mt * 8u;
    var lim = min(m_store + 8u, m_total);
    if (ROWS) {
        let rt = row_tile(mt, tiles_m, tiles_row);
        m_store = rt.m_store;
        lim = rt.lim;
        conv_rows(&t, rt.row / p.oh, rt.row % p.oh, rt.ox0, n0, cbeg, cend, lane, solo);
    } else {
        conv_flat(&t, &t2, mt, tiles_m, m_total, n0, cbeg, cend, lane, solo);
    }
    store_tile(&t, ks, m_store, lim, m_total, n0, lane, solo);
    if (WIDE && n0 + 16u < p.oc) {
        store_tile(&t2, ks, m_store, lim, m_total, n0 + 16u, lane, solo);
    }
}

// Column tiles of 16 channels, or with WIDE two of them (32 channels).
fn cols() -> u32 {
    return select(16u, 32u, WIDE);
}

// Stores a tile of conv_tiles: output pixels m_store.. (below lim) x channels n0..n0+15, through the
// epilogue, or with split-K its raw sums of split ks into `part`.
fn store_tile(t: ptr<function, Tile>, ks: u32, m_store: u32, lim: u32, m_total: u32, n0: u32, lane: u32, solo: bool) {
    let col0 = min(n0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.oc - 1u));
    let col1 = min(n0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.oc - 1u));
    let col2 = min(n0 + vec4<u32>(8u, 9u, 10u, 11u), vec4<u32>(p.oc - 1u));
    let col3 = min(n0 + vec4<u32>(12u, 13u, 14u, 15u), vec4<u32>(p.oc - 1u));
    // Stores unrolled by hand: a dynamically indexed accumulator array spills on CPU drivers. The
    // per-channel operands are the same for the 8 rows and loaded once.
    if (SPLITK) {
        // Raw sums of this split; conv2d_splitk_finish adds the splits and applies the epilogue.
        let base = ks * m_total * p.oc;
        store_part(base, m_store, lim, n0, (*t).c0_0, (*t).c0_1, (*t).c0_2, (*t).c0_3);
        store_part(base, m_store + 1u, lim, n0, (*t).c1_0, (*t).c1_1, (*t).c1_2, (*t).c1_3);
        store_part(base, m_store + 2u, lim, n0, (*t).c2_0, (*t).c2_1, (*t).c2_2, (*t).c2_3);
        store_part(base, m_store + 3u, lim, n0, (*t).c3_0, (*t).c3_1, (*t).c3_2, (*t).c3_3);
        store_part(base, m_store + 4u, lim, n0, (*t).c4_0, (*t).c4_1, (*t).c4_2, (*t).c4_3);
        store_part(base, m_store + 5u, lim, n0, (*t).c5_0, (*t).c5_1, (*t).c5_2, (*t).c5_3);
        store_part(base, m_store + 6u, lim, n0, (*t).c6_0, (*t).c6_1, (*t).c6_2, (*t).c6_3);
        store_part(base, m_store + 7u, lim, n0, (*t).c7_0, (*t).c7_1, (*t).c7_2, (*t).c7_3);
        return;
    }
    let es = chans(n0, lane, solo);
    let e0 = es.e0;
    let e1 = es.e1;
    let e2 = es.e2;
    let e3 = es.e3;
    store_row(m_store, lim, n0, finish(m_store, m_total, col0, e0, (*t).c0_0), finish(m_store, m_total, col1, e1, (*t).c0_1), finish(m_store, m_total, col2, e2, (*t).c0_2), finish(m_store, m_total, col3, e3, (*t).c0_3));
    store_row(m_store + 1u, lim, n0, finish(m_store + 1u, m_total, col0, e0, (*t).c1_0), finish(m_store + 1u, m_total, col1, e1, (*t).c1_1), finish(m_store + 1u, m_total, col2, e2, (*t).c1_2), finish(m_store + 1u, m_total, col3, e3, (*t).c1_3));
    store_row(m_store + 2u, lim, n0, finish(m_store + 2u, m_total, col0, e0, (*t).c2_0), finish(m_store + 2u, m_total, col1, e1, (*t).c2_1), finish(m_store + 2u, m_total, col2, e2, (*t).c2_2), finish(m_store + 2u, m_total, col3, e3, (*t).c2_3));
    store_row(m_store + 3u, lim, n0, finish(m_store + 3u, m_total, col0, e0, (*t).c3_0), finish(m_store + 3u, m_total, col1, e1, (*t).c3_1), finish(m_store + 3u, m_total, col2, e2, (*t).c3_2), finish(m_store + 3u, m_total, col3, e3, (*t).c3_3));
    store_row(m_store + 4u, lim, n0, finish(m_store + 4u, m_total, col0, e0, (*t).c4_0), finish(m_store + 4u, m_total, col1, e1, (*t).c4_1), finish(m_store + 4u, m_total, col2, e2, (*t).c4_2), finish(m_store + 4u, m_total, col3, e3, (*t).c4_3));
    store_row(m_store + 5u, lim, n0, finish(m_store + 5u, m_total, col0, e0, (*t).c5_0), finish(m_store + 5u, m_total, col1, e1, (*t).c5_1), finish(m_store + 5u, m_total, col2, e2, (*t).c5_2), finish(m_store + 5u, m_total, col3, e3, (*t).c5_3));
    store_row(m_store + 6u, lim, n0, finish(m_store + 6u, m_total, col0, e0, (*t).c6_0), finish(m_store + 6u, m_total, col1, e1, (*t).c6_1), finish(m_store + 6u, m_total, col2, e2, (*t).c6_2), finish(m_store + 6u, m_total, col3, e3, (*t).c6_3));
    store_row(m_store + 7u, lim, n0, finish(m_store + 7u, m_total, col0, e0, (*t).c7_0), finish(m_store + 7u, m_total, col1, e1, (*t).c7_1), finish(m_store + 7u, m_total, col2, e2, (*t).c7_2), finish(m_store + 7u, m_total, col3, e3, (*t).c7_3));
}

// After a split-K conv2d: y = epilogue(sum of the splits' partial sums), four channels per invocation.
@compute @workgroup_size(64)
fn conv2d_splitk_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = gid.y * nwg.x * 64u + gid.x;
    let m_total = p.n * p.oh * p.ow;
    let total4 = m_total * p.oc / 4u;
    if (i4 >= total4) {
        return;
    }
    var acc = vec4<f32>();
    for (var s = 0u; s < p.ksplits; s++) {
        acc += part[s * total4 + i4];
    }
    let m = (i4 * 4u) / p.oc;
    let n = (i4 * 4u) % p.oc;
    let cols = n + vec4<u32>(0u, 1u, 2u, 3u);
    y[(m * p.y_c + p.y_off + n) / 4u] = finish(m, m_total, cols, chan(cols), acc);
}
