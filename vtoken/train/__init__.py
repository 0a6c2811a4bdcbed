"""Training pipeline of the tokenizer (nothing here is imported by the codec).

data.py        folders of videos/photos -> resident uint8 cache -> random clips (seeded)
losses.py      L1/L2, LPIPS, LFQ commitment/entropy, optional hinge GAN + LeCam, plane dropout
checkpoint.py  safetensors shards < 16 MB + JSON manifest, exact resume, no pickle
loop.py        TrainConfig (JSON), Trainer, train(): EMA, bf16, compile, DDP, --max-minutes
export.py      EMA weights -> shipped model (+ entropy prior fitted on training clips)
evaluate.py    PSNR/LPIPS per kept plane count, raw bits per pixel
pack.py        a training folder small enough to carry to the GPU machine
cli.py         `vtoken train ...` (see README.md beside this file)"""
