"""facenet-pytorch's side of benches/compare_facenet_pytorch.sh: the same work as `facegpu bench
embed|train|detect`, on the CPU, printed as one JSON object. Weights are random (speed does not depend
on them); MTCNN uses the package's bundled weights."""
import json
import os
import sys
import time

import torch
from facenet_pytorch import MTCNN, InceptionResnetV1
from PIL import Image


def median_seconds(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    reps = int(os.environ.get("REPS", "3"))
    photos = sys.argv[1:]
    torch.set_num_threads(os.cpu_count() or 1)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    net = InceptionResnetV1(pretrained=None).eval()
    for b in (1, 32):
        x = torch.randn(b, 3, 160, 160)
        with torch.no_grad():
            s = median_seconds(lambda: net(x), reps)
        out[f"embed_images_per_s_batch{b}"] = b / s

    train_net = InceptionResnetV1(pretrained=None, classify=True, num_classes=1000).train()
    opt = torch.optim.Adam(train_net.parameters(), lr=1e-4, eps=0.1)
    x = torch.randn(32, 3, 160, 160)
    y = torch.randint(0, 1000, (32,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(train_net(x), y).backward()
        opt.step()

    out["train_images_per_s"] = 32 / median_seconds(step, max(2, reps - 1))

    if photos:
        mtcnn = MTCNN(keep_all=True, device="cpu")
        images = [Image.open(p).convert("RGB") for p in photos]
        faces = [0]

        def detect_all():
            faces[0] = 0
            for im in images:
                boxes, _ = mtcnn.detect(im)
                faces[0] += 0 if boxes is None else len(boxes)

        s = median_seconds(detect_all, reps)
        out["detect_ms_per_image"] = s * 1e3 / len(images)
        out["detect_faces"] = faces[0]
        out["detect_photos"] = len(images)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
