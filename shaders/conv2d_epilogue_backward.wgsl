// The backward of conv2d's fused epilogue (see conv2d_backward_common.wgsl for the forward), four
// output elements per invocation:
//   du   = dy * act'(u)            relu: y > 0;  prelu: u > 0 ? 1 : alpha[o]  (u read from `preact`)
//   prod = dy * min(u, 0)          (act 2: summed per channel by reduce.wgsl col_sum into d alpha)
//   dres = du                      (flags & 4: written, or added when flags & 8)
//   g    = du * res_scale (flags & 4) * scale[o] (flags & 2)   (gradient of the raw conv output;
//                                    its column sums are d bias; the affine is a frozen batch norm)

// Four elements per invocation: as vec4s when oc is a multiple of 4, else one by one.
@compute @workgroup_size(64)
fn epilogue_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = index(gid, nwg);
    let total = p.n * p.oh * p.ow * p.oc;
    if (i4 * 4u >= total) {
        return;
    }
    if (VEC) {
        let o4 = ((i4 * 4u) % p.oc) / 4u;
        let dy = a[i4];
        var du = dy;
        if (ACT == 1u) {
            du = select(vec4<f32>(), dy, b[i4] > vec4<f32>());
        } else if (ACT == 2u) {
            let u = preact[i4];
            du = select(alpha[o4] * dy, dy, u > vec4<f32>());
            prod[i4] = dy * min(u, vec4<f32>());
        }
        var g = du;
        if (RESIDUAL) {
            var r = du;
            if (RES_ACC) { r += dres[i4]; }
            dres[i4] = r;
            g = g * p.res_scale;
        }
        if (AFFINE) {
            g = g * scale[o4];
        }
        out[i4] = g;
        return;
    }
    for (var i = i4 * 4u; i < min(i4 * 4u + 4u, total); i++) {
        let q = i >> 2u;
        let r = i & 3u;
        let o = i % p.oc;
        let dy = as_(i);
        var du = dy;
        if (ACT == 1u) {
            du = select(0.0, dy, bs(i) > 0.0);
        } else if (ACT == 2u) {
            let u = preact[q][r];
            du = select(alpha[o >> 2u][o & 3u] * dy, dy, u > 0.0);
            prod[q][r] = dy * min(u, 0.0);
        }
        var g = du;
        if (RESIDUAL) {
            var d = du;
            if (RES_ACC) { d += dres[q][r]; }
            dres[q][r] = d;
            g = g * p.res_scale;
        }
        if (AFFINE) {
            g = g * scale[o >> 2u][o & 3u];
        }
        out[q][r] = g;
    }
}
