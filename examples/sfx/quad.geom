; Four 192 x 192 panels of 0.1 mm pixels around the beam, 2 mm gaps between them, 60 mm
; from the sample: the layout of a small four-module detector (CrystFEL geometry format).
; CrystFEL's frame: z along the beam, y up; corner_x/y in pixels from the beam.
res = 10000
clen = 0.060
photon_energy = 9537

q0/min_fs = 0
q0/max_fs = 191
q0/min_ss = 0
q0/max_ss = 191
q0/fs = -1x
q0/ss = -1y
q0/corner_x = 202
q0/corner_y = 202

q1/min_fs = 0
q1/max_fs = 191
q1/min_ss = 192
q1/max_ss = 383
q1/fs = -1x
q1/ss = -1y
q1/corner_x = -10
q1/corner_y = 202

q2/min_fs = 0
q2/max_fs = 191
q2/min_ss = 384
q2/max_ss = 575
q2/fs = -1x
q2/ss = -1y
q2/corner_x = 202
q2/corner_y = -10

q3/min_fs = 0
q3/max_fs = 191
q3/min_ss = 576
q3/max_ss = 767
q3/fs = -1x
q3/ss = -1y
q3/corner_x = -10
q3/corner_y = -10
