// facenet's triplet loss over L2-normalized embeddings laid out as consecutive (anchor, positive,
// negative) rows of e [3k, d]:
//
//   pos[t] = |a - p|^2,  neg[t] = |a - n|^2,  loss[t] = max(pos[t] - neg[t] + alpha, 0)
//   (the mean over t is taken by reduce.wgsl)
//   grad, where loss[t] > 0, scaled by s = weight / k (the loss is terminal, so the forward writes it):
//     d a = s * 2 (n - p),  d p = s * 2 (p - a),  d n = s * 2 (a - n);  0 elsewhere

struct Params { k: u32, d: u32, alpha: f32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> e: array<f32>;              // [3k, d]
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;     // [k]
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;     // [3k, d]

@compute @workgroup_size(64)
fn triplet_loss(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.y * nwg.x * 64u + gid.x;
    if (t >= p.k) {
        return;
    }
    let a = 3u * t * p.d;
    let q = a + p.d;
    let n = q + p.d;
    var pos = 0.0;
    var neg = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let dp = e[a + j] - e[q + j];
        let dn = e[a + j] - e[n + j];
        pos += dp * dp;
        neg += dn * dn;
    }
    let l = max(pos - neg + p.alpha, 0.0);
    loss[t] = l;
    let s = select(0.0, 2.0 * p.scale, l > 0.0);
    for (var j = 0u; j < p.d; j++) {
        grad[a + j] = s * (e[n + j] - e[q + j]);
        grad[q + j] = s * (e[q + j] - e[a + j]);
        grad[n + j] = s * (e[a + j] - e[n + j]);
    }
}
