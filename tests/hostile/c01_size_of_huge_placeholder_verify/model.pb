
:
xPlaceholder*
dtype0*
shape:€€€€€€€€
'
outSizex*
T0*
out_type0	"µ	