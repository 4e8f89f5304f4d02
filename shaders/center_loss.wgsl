// Center loss on [b, d] features with labels [b] and centers [classes, d] (facenet, section 4):
//
// center_terms:  diff[i,k] = x[i,k] - centers[label[i],k]     (saved: the gradient of the mean loss is
//                                                              2 diff / (b d), centers get none)
//                sq[i,k] = diff[i,k]^2                          (loss = mean(sq), via reduce.wgsl)
// center_update: centers[l,k] -= sum_{i: label[i]=l} (1 - alfa) * (centers[l,k] - x[i,k])
//                             = centers[l,k] + (1 - alfa) * sum diff[i,k]   (scatter_sub: repeated labels
//                add up; the first row with each label applies the sum, so no two invocations write one center)

struct Params { b: u32, d: u32, classes: u32, alfa: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;               // [b, d]
@group(0) @binding(2) var<storage, read> label: array<u32>;           // [b]
@group(0) @binding(3) var<storage, read_write> centers: array<f32>;   // [classes, d]
@group(0) @binding(4) var<storage, read_write> sq: array<f32>;        // [b, d]
@group(0) @binding(5) var<storage, read_write> diff: array<f32>;      // [b, d]

@compute @workgroup_size(64)
fn center_terms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.b * p.d) {
        return;
    }
    let row = i / p.d;
    let k = i % p.d;
    let c = centers[label[row] * p.d + k];
    let v = x[i] - c;
    sq[i] = v * v;
    diff[i] = v;
}

@compute @workgroup_size(64)
fn center_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.b * p.d) {
        return;
    }
    let row = i / p.d;
    let k = i % p.d;
    let l = label[row];
    for (var j = 0u; j < row; j++) {
        if (label[j] == l) {
            return;
        }
    }
    var s = 0.0;
    for (var j = row; j < p.b; j++) {
        if (label[j] == l) {
            s += diff[j * p.d + k];
        }
    }
    centers[l * p.d + k] += (1.0 - p.alfa) * s;
}
