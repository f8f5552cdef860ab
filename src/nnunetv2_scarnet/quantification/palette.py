"""Colours of the report pictures, chosen to stay apart under colour-vision deficiency (docs/report.md, "Colours").

Contours and orientation marks use the Okabe & Ito (2008) palette for colour-blind readers: on a grey LGE image the
myocardium (sky blue), scar (vermillion), MVO (yellow) and the septum line with the RV insertion points (blue) keep
a CIELAB (CIE76) difference of at least 24.8 from each other and a chroma of at least 31 under simulated
deuteranopia and protanopia (Machado et al. 2009); the former lime / red / yellow / cyan fell to 5 (all olive).
Segment borders and labels are white with a dark outline (no hue to confuse).

Maps: scar extent uses cividis (Nunez et al., PLoS ONE 2018: a colour map made for colour-vision deficiency, its
lightness rising with the value); Kim et al. (NEJM 2000) transmurality categories use the five classes of
ColorBrewer's sequential YlOrBr (Harrower & Brewer 2003), light to dark with the category.
"""

#: Okabe & Ito (2008), "Color Universal Design": the colours used here
OKABE_ITO = {"orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
MYOCARDIUM = OKABE_ITO["sky blue"]
SCAR = OKABE_ITO["vermillion"]
MVO = OKABE_ITO["yellow"]
#: the septum line and the RV insertion points it bisects
SEPTUM = OKABE_ITO["blue"]
#: segment borders, segment numbers and wall labels (drawn with a dark outline)
BORDER = "#FFFFFF"
OUTLINE = "#000000"
#: what the page's legend says of each colour
NAMES = {MYOCARDIUM: "sky blue", SCAR: "vermillion (orange-red)", MVO: "yellow", SEPTUM: "blue", BORDER: "white"}

#: continuous scar-extent map (0-100 %)
EXTENT_CMAP = "cividis"
#: Kim et al. categories 0 %, 1-25 %, 26-50 %, 51-75 %, 76-100 %: ColorBrewer YlOrBr, 5 classes
KIM_COLOURS = ("#FFFFD4", "#FED98E", "#FE9929", "#D95F0E", "#993404")
#: a segment without a measure (no myocardium, apical cap without chords): light grey, hatched
MISSING = "#D9D9D9"
