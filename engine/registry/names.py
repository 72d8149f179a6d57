"""Word lists for synthetic Chinese names. Fictional people and shops; the community
names are Tangxia's villages and neighbourhoods, placed at random, not surveyed."""

from __future__ import annotations

import random

# Common surnames, roughly by frequency in Guangdong (more weight first).
SURNAMES = (
    "陈李黄张梁刘林吴王何郭罗杨郑谢叶钟周邓曾许蔡冯朱苏卢赖彭温胡刘邱廖方潘谭徐江余欧麦严姚袁莫"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志红文斌辉鹏"
    "婷雪琳晨宇浩然子轩嘉欣梓涵俊杰家豪振宏永健锦荣淑贞美玲海燕丹凤丽萍"
)

COMMUNITIES = (
    "塘厦",
    "石潭埔",
    "田心",
    "林村",
    "平山",
    "石鼓",
    "大坪",
    "龙背岭",
    "凤凰岗",
    "清湖头",
    "莆心湖",
    "蛟乙塘",
    "四村",
    "诸佛岭",
    "沙湖口",
    "鹿苑",
    "桥陇",
    "竹园",
    "高丽",
    "新塘",
    "科苑城",
    "近田",
    "138工业区",
)

SHOPS = (
    "便利店",
    "五金店",
    "餐馆",
    "药店",
    "手机店",
    "理发店",
    "茶餐厅",
    "超市",
    "水果店",
    "服装店",
)
BUILDINGS = ("花园", "公寓", "新村", "大厦", "宿舍楼")
SECURITY_POSTS = ("工业园保安亭", "厂区门岗", "小区门岗", "商场保安室")
PROPERTY_OFFICES = ("物业管理处", "物业服务中心")
PLATFORMS = ("美团", "饿了么", "顺丰", "滴滴", "货拉拉", "京东")


def person_name(rng: random.Random) -> str:
    surname = SURNAMES[rng.randrange(len(SURNAMES))]
    given = "".join(GIVEN[rng.randrange(len(GIVEN))] for _ in range(1 + (rng.random() < 0.7)))
    return surname + given
