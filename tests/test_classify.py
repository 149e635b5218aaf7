"""The keyword task classifier: labels on hand-written prompts, the result type, tools,
long context, messages, user tables, validation, lazy loading and speed."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from llmroute.classification import (DEFAULT_LONG_CONTEXT_TOKENS, Classification, Classifier,
                               TaskType, classify)

# Prompts written for these tests (not taken from the dev set), as people type them:
# (language, expected label, prompt). CLEAR are plain requests in varied wording; TRICKY
# carry surface words of another label ("a poem generator in Python" is code).

CLEAR = [
    ("en", "code", "My Flask app returns a 500 whenever the form is submitted empty. How do I validate the fields before hitting the database?"),
    ("en", "code", "Traceback (most recent call last):\n  File \"app.py\", line 8, in <module>\n    main()\nKeyError: 'user'\n\nwhat am I doing wrong?"),
    ("en", "code", "Can you turn this shell loop into a Makefile target?\n\nfor f in src/*.c; do gcc -c $f; done"),
    ("en", "code", "How would I memoize a recursive function in JavaScript without a library?"),
    ("en", "code", "Translate this Python snippet to Go:\n\n```python\nwith open('a.txt') as f:\n    print(len(f.readlines()))\n```"),
    ("en", "math", "What is 17% of 2,340?"),
    ("en", "math", "A rectangle's length is three times its width and its perimeter is 64 cm. Find its area."),
    ("en", "math", "Show that the sum of two odd integers is always even."),
    ("en", "math", "If a car depreciates 15% per year, what is a $30,000 car worth after 4 years?"),
    ("en", "math", "Integrate x e^x from 0 to 1."),
    ("en", "summarization", "Give me the short version of this article, I only have a minute:\n\nThe national weather service issued a heat advisory for the entire region through Sunday, warning that temperatures could climb above 40 degrees in the afternoon. Officials urged residents to stay indoors during peak hours, check on elderly neighbours, and avoid strenuous outdoor activity. Cooling centres will open in libraries and community halls."),
    ("en", "summarization", "Summarize this code review meeting for the people who missed it:\n\nAlex: the retry logic in the client is duplicated in three places.\nBea: agreed, let's pull it into one helper.\nAlex: also the tests sleep for real, that's why CI takes 12 minutes.\nBea: I'll switch them to a fake clock this sprint."),
    ("en", "summarization", "What are the main points of the Gettysburg Address? Keep it short."),
    ("en", "summarization", "Can you write up a brief recap of the discussion below for our wiki?\n\nPriya said the vendor missed two deadlines. Omar proposed a penalty clause. The team agreed to renegotiate in March and to keep the current vendor until then."),
    ("en", "creative_writing", "Write a short story about a mathematician who discovers that numbers can talk."),
    ("en", "creative_writing", "Can you make up a funny song about my cat knocking things off the table?"),
    ("en", "creative_writing", "I need a four-line poem for my grandmother's 90th birthday card."),
    ("en", "creative_writing", "Draft a spooky opening paragraph for a ghost story set in a lighthouse."),
    ("en", "extraction", "What is the deadline mentioned in this message?\n\nHi all, reminder that expense reports for Q2 are due by Friday July 12. Late submissions will be processed next month. Thanks, Dana"),
    ("en", "extraction", "Give me every company name in the paragraph below as a bullet list.\n\nAfter the merger, Acme Corp and Globex announced a partnership with Initech, while Umbrella Health declined to comment. Analysts at Stark Capital expect more deals."),
    ("en", "extraction", "From the following customer record, return name, city and account number as JSON.\n\nCustomer: Maria Lopez, 22 Elm Road, Springfield. Account no. 55-1209. Member since 2019."),
    ("en", "general", "What's a good way to keep basil alive indoors during winter?"),
    ("en", "general", "Is it rude to leave a group chat without saying anything?"),
    ("en", "general", "Explain how vaccines train the immune system, in simple terms."),
    ("en", "general", "Which is healthier for breakfast, oatmeal or eggs?"),
    ("en", "general", "Who invented the printing press and why did it matter?"),
    ("ko", "code", "자바스크립트에서 배열을 랜덤으로 섞는 코드 알려줘"),
    ("ko", "code", "이 SQL 실행하면 문법 오류 나는데 어디가 틀렸는지 봐주세요\n\nSELECT name, COUNT(*) FROM users GROUP name;"),
    ("ko", "code", "파이썬으로 폴더 안 이미지 파일 크기를 한 번에 줄이는 프로그램 만들어 줄 수 있어?"),
    ("ko", "code", "리액트에서 useState 값이 바로 안 바뀌는 이유가 뭐예요? 코드 예시도 부탁해요"),
    ("ko", "math", "2의 10제곱은 얼마예요?"),
    ("ko", "math", "한 변이 6cm인 정사각형의 대각선 길이를 구해 주세요"),
    ("ko", "math", "사과 12개를 3명이 똑같이 나누면 한 명당 몇 개씩이야?"),
    ("ko", "math", "x² - 4x + 3 = 0의 해를 구하시오"),
    ("ko", "summarization", "다음 기사 내용을 두세 문장으로 요약해 줘\n\n정부는 내년부터 청년층의 월세 부담을 덜기 위해 월 최대 20만 원의 월세를 12개월간 지원하기로 했다. 지원 대상은 부모와 따로 사는 만 19세부터 34세까지의 무주택 청년으로, 소득 기준을 충족해야 한다. 신청은 주민센터와 온라인으로 받는다."),
    ("ko", "summarization", "어제 회의 내용 정리 좀 해줘. 핵심만.\n\n- 신규 앱 출시일은 3월 2일로 확정\n- 마케팅 예산은 10% 삭감\n- 디자인 수정안은 다음 주까지 재검토"),
    ("ko", "summarization", "영화 기생충 줄거리 간단히 알려줘"),
    ("ko", "creative_writing", "비 오는 날 카페를 배경으로 한 짧은 로맨스 소설 써줘"),
    ("ko", "creative_writing", "친구 결혼식 축사 좀 써 줄래? 재밌고 따뜻하게"),
    ("ko", "creative_writing", "우리 강아지 이름으로 사행시 지어줘. 이름은 '보리콩이'야"),
    ("ko", "extraction", "아래 문자에서 인증번호만 알려줘\n\n[Web발신] 본인확인 인증번호 [482913]를 입력해주세요. 타인에게 절대 알려주지 마세요."),
    ("ko", "extraction", "다음 글에 나오는 회사 이름들을 모두 뽑아줘\n\n삼성전자와 LG전자는 올해 CES에서 나란히 신제품을 공개했다. 한편 네이버와 카카오는 AI 서비스 경쟁을 이어가고 있다."),
    ("ko", "extraction", "이 영수증에서 날짜랑 총 결제 금액 찾아줘\n\n스타벅스 강남점\n2024-03-05 14:22\n아메리카노 2잔 9,000원\n합계 9,000원"),
    ("ko", "general", "겨울에 실내 습도 유지하는 방법 좀 알려줘"),
    ("ko", "general", "고양이가 밤에 자꾸 우는 이유가 뭘까요?"),
    ("ko", "general", "재택근무랑 사무실 출근 중에 뭐가 더 생산성이 높다고 생각해?"),
    ("ko", "general", "조선 시대 과거 시험은 어떻게 치러졌나요?"),
    ("zh", "code", "用 Python 写一个函数，判断一个字符串是不是回文"),
    ("zh", "code", "这个 SQL 为什么查不出数据？\n\nSELECT * FROM orders WHERE created_at = '2024-01-01';"),
    ("zh", "code", "Vue 组件之间怎么传值？给个父传子的例子"),
    ("zh", "code", "帮我看看这段 Java 代码哪里会空指针：\n\nString s = map.get(\"key\");\nSystem.out.println(s.length());"),
    ("zh", "math", "一件衣服原价 200 元，打八折后再减 20 元，最后多少钱？"),
    ("zh", "math", "求 1 到 100 所有偶数的和"),
    ("zh", "math", "已知等差数列首项为 3，公差为 4，求第 20 项"),
    ("zh", "math", "掷两枚硬币，至少一枚正面朝上的概率是多少？"),
    ("zh", "summarization", "帮我把下面这段新闻压缩成两句话\n\n今年夏季，南方多地遭遇持续强降雨，部分城市出现内涝。气象部门提醒，未来一周降雨仍将持续，请市民减少不必要的外出。应急管理部门已启动三级响应，调派救援力量赶赴受灾地区。"),
    ("zh", "summarization", "《活着》这本书讲了个什么故事？简单说下"),
    ("zh", "summarization", "下面是今天的站会记录，帮我整理成三条要点发群里\n\n小王：登录页改版完成，待测试。\n小李：支付接口联调卡住了，等第三方回复。\n小张：下周开始做数据看板。"),
    ("zh", "creative_writing", "写一首关于秋天落叶的小诗"),
    ("zh", "creative_writing", "给我的烘焙工作室想一句广告语，要温暖一点"),
    ("zh", "creative_writing", "以“最后一班地铁”为题写一篇微小说"),
    ("zh", "creative_writing", "编一个关于数学家和小狗的童话故事，讲给孩子听"),
    ("zh", "extraction", "从这段话里找出所有的时间和地点\n\n我们周六上午十点在人民公园门口集合，中午去南京路吃饭，下午三点到外滩看展。"),
    ("zh", "extraction", "把下面快递信息里的收件人、电话和地址提取出来\n\n收件人：王小明 电话：139-0000-1234 地址：广州市天河区体育西路 100 号"),
    ("zh", "extraction", "这篇通知里提到了哪些截止时间？\n\n各部门请于 3 月 10 日前提交年度预算，3 月 15 日前完成人员盘点，3 月 31 日前上报培训计划。"),
    ("zh", "general", "为什么冬天容易感冒？"),
    ("zh", "general", "去日本旅游需要注意什么？"),
    ("zh", "general", "学吉他和学钢琴，哪个更适合成年人入门？"),
    ("zh", "general", "怎么跟领导提加薪比较好？"),
    ("ja", "code", "Pythonでファイルを一行ずつ読み込む方法を教えてください"),
    ("ja", "code", "このJavaScriptがundefinedを返す原因を調べてほしいです\n\nfunction add(a, b) {\n  a + b;\n}\nconsole.log(add(1, 2));"),
    ("ja", "code", "Dockerでnginxを立ち上げるdocker-compose.ymlを書いて"),
    ("ja", "code", "SQLで重複しているメールアドレスを探すクエリを教えて"),
    ("ja", "math", "3x + 5 = 20 のとき、x はいくつですか？"),
    ("ja", "math", "半径5cmの円の面積を求めてください"),
    ("ja", "math", "1個120円のりんごを8個と1個80円のみかんを5個買うと、合計いくらですか？"),
    ("ja", "math", "サイコロを2回振って、出た目の和が7になる確率は？"),
    ("ja", "summarization", "次のニュースを一文で要約して\n\n政府は来年度から、高校の授業料を所得に関係なく無償化する方針を固めた。対象は公立・私立を問わず全国の高校生で、約300万人が恩恵を受ける見込みだ。財源は国債に頼らず、既存予算の見直しで確保する。"),
    ("ja", "summarization", "『吾輩は猫である』ってどんな話ですか？ざっくり教えて"),
    ("ja", "summarization", "以下のチャットのやりとりを簡単にまとめてください\n\n佐藤：明日の打ち合わせ、10時からで大丈夫？\n田中：11時にしてもらえる？\n佐藤：了解、11時で。会議室はBで。"),
    ("ja", "creative_writing", "夏祭りをテーマにした短い詩を書いてください"),
    ("ja", "creative_writing", "新しいパン屋さんのキャッチフレーズを考えてほしい"),
    ("ja", "creative_writing", "ロボットと少女の友情を描いた短編小説を書いて"),
    ("ja", "creative_writing", "数学者が主人公の、ちょっと切ない物語を作ってください"),
    ("ja", "extraction", "次のメールから、面接の日時と場所を抜き出してください。\n\n山田様\n一次面接を3月8日（金）14時より、本社5階会議室にて行います。当日は履歴書をご持参ください。"),
    ("ja", "extraction", "この文章に出てくる駅名を全部リストアップして\n\n渋谷駅で降りて、表参道まで歩き、そこから銀座線で上野駅へ向かった。"),
    ("ja", "extraction", "以下の商品説明から、価格・サイズ・色を教えてください。\n\n【新作】リネンシャツ 価格：4,980円（税込） サイズ：S/M/L カラー：ホワイト、ネイビー"),
    ("ja", "general", "猫がゴロゴロ喉を鳴らすのはなぜですか？"),
    ("ja", "general", "初めての一人暮らしで揃えるべきものを教えてください"),
    ("ja", "general", "iPhoneとAndroid、どちらがおすすめですか？"),
    ("ja", "general", "鎌倉幕府が滅びた理由を説明してください"),
    ("en", "code", "how to reverse a string in c without strlen"),
    ("en", "code", "getting 'permission denied (publickey)' when I git push, what do I do"),
    ("en", "code", "Optimize this query, it takes 9 seconds:\n\nSELECT * FROM events e JOIN users u ON u.id = e.user_id WHERE u.country = 'DE' ORDER BY e.ts DESC;"),
    ("en", "code", "Write unit tests for this function using pytest:\n\ndef slugify(s):\n    return s.lower().strip().replace(' ', '-')"),
    ("en", "code", "what does `git rebase -i HEAD~3` actually do"),
    ("en", "code", "Can you write a script that renames all my vacation photos by the date they were taken?"),
    ("en", "math", "solve 2x/3 - 4 = 10"),
    ("en", "math", "whats the derivative of sin(x)cos(x)"),
    ("en", "math", "A pizza is cut into 8 slices. Tom eats 3 and Ann eats 2. What fraction of the pizza is left?"),
    ("en", "math", "I drove 340 miles on 11.5 gallons. What's my fuel economy in mpg?"),
    ("en", "math", "Is 221 a prime number? Explain how you checked."),
    ("en", "math", "How many different 4-digit PINs can be made if no digit repeats?"),
    ("en", "summarization", "Can you sum up what this customer is complaining about?\n\nI ordered the blue kettle three weeks ago and it still hasn't shipped. I emailed twice and got automated replies both times. Honestly I'm about to cancel and order from somewhere else. I just want to know if it's coming or not."),
    ("en", "summarization", "Give me a TL;DR of the Wikipedia article on photosynthesis."),
    ("en", "summarization", "Here are the notes from my therapy-style journaling this week. Could you tell me in a few lines what the recurring themes are?\n\nMon: tired, skipped gym, felt guilty.\nWed: argued with sister about mom's care.\nFri: great walk, but worried about money again.\nSun: couldn't sleep, thinking about work and money."),
    ("en", "summarization", "Shorten this paragraph to one tweet:\n\nOur bakery will be closed on Monday for maintenance of the ovens. We'll reopen Tuesday at 7am with a special on croissants to thank you for your patience. Follow us for updates."),
    ("en", "creative_writing", "write a haiku about debugging at 3am"),
    ("en", "creative_writing", "Pretend you're a pirate and write a letter to your crew about the new dental plan."),
    ("en", "creative_writing", "Give me 5 name ideas for a podcast about personal finance for artists."),
    ("en", "creative_writing", "Compose a lullaby for a baby elephant."),
    ("en", "creative_writing", "Write a villain's monologue for a school play — nothing too scary."),
    ("en", "extraction", "Which cities does the author visit in this travel blog post?\n\nWe started in Lisbon, took the train to Porto for two nights, then flew to Seville. The last leg was a bus ride to Granada, where we finally saw the Alhambra."),
    ("en", "extraction", "From the log below, give me just the timestamps of the ERROR lines.\n\n10:01:02 INFO start\n10:01:05 ERROR disk full\n10:02:11 INFO retry\n10:02:15 ERROR disk full"),
    ("en", "extraction", "Pull the author names and publication years out of these citations:\n\nSmith, J. (2019). Deep sea fish. Ocean Press.\nNguyen, T. & Park, L. (2021). Coral reefs. Reef Journal."),
    ("en", "extraction", "What's the flight number and departure gate in this boarding pass text?\n\nPASSENGER: LEE/MINA  FLIGHT: KE 081  GATE: 23  BOARDING 18:40  SEAT 42A"),
    ("en", "general", "best way to learn touch typing as an adult?"),
    ("en", "general", "What's the difference between baking soda and baking powder?"),
    ("en", "general", "I'm nervous about my first marathon next month, any advice?"),
    ("en", "general", "Why do cats purr?"),
    ("en", "general", "How do I politely decline a wedding invitation?"),
    ("en", "general", "Who was Ada Lovelace?"),
    ("ko", "code", "엑셀 VLOOKUP이 #N/A 뜨는데 수식 어디가 잘못된 거야?"),
    ("ko", "code", "C언어 포인터랑 배열 차이를 코드로 보여줘"),
    ("ko", "code", "이 코드 실행하면 무한루프 돌아요 왜 그럴까요\n\nwhile i < 10:\n    print(i)"),
    ("ko", "math", "시속 80km로 2시간 30분 달리면 몇 km 가?"),
    ("ko", "math", "1부터 50까지 홀수의 합은?"),
    ("ko", "math", "원가 8000원짜리를 25% 이익 붙여 팔면 판매가는 얼마예요?"),
    ("ko", "math", "로그 2의 8은 뭐야?"),
    ("ko", "summarization", "이 리뷰들 보고 사람들이 대체로 만족하는지 한 줄로 말해줘\n\n- 배송 빨라요 좋아요\n- 생각보다 작아요\n- 가격 대비 괜찮음\n- 재구매 의사 있어요"),
    ("ko", "summarization", "이 이메일 너무 긴데 요점만 알려줄래?\n\n안녕하세요 팀장님, 지난주 말씀하신 견적 건 관련해서 협력사와 다시 통화했습니다. 단가는 기존 대비 5% 인하 가능하고, 납기는 2주 단축이 어렵다고 합니다. 대신 분할 납품은 가능하다고 하니 검토 부탁드립니다."),
    ("ko", "summarization", "해리포터 1권 내용 짧게 정리해줘"),
    ("ko", "creative_writing", "첫눈 오는 날에 대한 감성적인 글 한 편 써줘"),
    ("ko", "creative_writing", "치킨집 개업 전단지 문구 만들어 줘"),
    ("ko", "creative_writing", "용이 나오는 판타지 모험 이야기 시작 부분 써줘"),
    ("ko", "extraction", "이 기사에서 언급된 날짜를 전부 뽑아줘\n\n회사는 3월 2일 신제품을 발표하고 4월 15일 출시한다고 밝혔다. 사전 예약은 3월 20일부터 받는다."),
    ("ko", "extraction", "아래 명함 내용에서 이름, 직함, 이메일만 정리해줘\n\n김하늘 | 마케팅팀 과장 | haneul.kim@abc.co.kr | 010-2222-3333"),
    ("ko", "general", "요즘 볼만한 넷플릭스 드라마 추천해줘"),
    ("ko", "general", "양자역학이 뭔지 쉽게 설명해 줄 수 있어?"),
    ("ko", "general", "회사 그만두고 대학원 가는 거 어떻게 생각해?"),
    ("ko", "general", "김치찌개 맛있게 끓이는 법 알려줘"),
    ("zh", "code", "Linux 下怎么查看哪个进程占用了 8080 端口"),
    ("zh", "code", "帮我写个正则，匹配邮箱地址"),
    ("zh", "code", "React 里 useEffect 的依赖数组为空是什么意思？"),
    ("zh", "code", "下面这个 Python 函数有 bug，帮我改一下\n\ndef avg(nums):\n    return sum(nums) / len(nums) + 1"),
    ("zh", "math", "一个数的 3 倍加上 7 等于 25，这个数是多少？"),
    ("zh", "math", "计算 (3/4 + 5/6) × 12"),
    ("zh", "math", "小明每分钟走 60 米，走完 1.8 公里需要多长时间？"),
    ("zh", "math", "证明根号 2 是无理数"),
    ("zh", "summarization", "用三句话概括一下《三国演义》"),
    ("zh", "summarization", "这段聊天记录太长了，帮我看看他们最后决定了什么\n\n甲：周末去爬山吗？\n乙：天气预报说下雨\n丙：那改去看电影吧\n甲：行，看下午三点那场\n乙：同意"),
    ("zh", "summarization", "请为下面的文章写一段 100 字以内的摘要\n\n近年来，越来越多的年轻人选择回到家乡创业。他们利用电商平台销售家乡特产，带动了当地经济发展，也让更多人看到了乡村振兴的希望。"),
    ("zh", "creative_writing", "写一段情人节表白的话，不要太肉麻"),
    ("zh", "creative_writing", "帮我写一首藏头诗，藏“新年快乐”四个字"),
    ("zh", "creative_writing", "续写这个故事：那天晚上，门铃响了三次，可门外一个人也没有。"),
    ("zh", "extraction", "下面这段简介里提到了哪些书名？\n\n他早年写过《北方的河》，后来出版了《黄金时代》和《沉默的大多数》，晚年还翻译了《情人》。"),
    ("zh", "extraction", "提取下面订单里的商品名称和数量\n\n订单 88123：蓝牙耳机 ×2，手机壳 ×1，数据线 ×3"),
    ("zh", "general", "为什么飞机起飞时要调直座椅靠背？"),
    ("zh", "general", "推荐几部适合全家一起看的动画电影"),
    ("zh", "general", "猫和狗哪个更适合上班族养？"),
    ("zh", "general", "中秋节有哪些传统习俗？"),
    ("ja", "code", "Gitでコミットメッセージを修正するにはどうすればいいですか？"),
    ("ja", "code", "このPythonのコード、リスト内包表記で書き直して\n\nresult = []\nfor x in range(10):\n    result.append(x * 2)"),
    ("ja", "code", "HTMLとCSSだけでハンバーガーメニューを作る方法を教えて"),
    ("ja", "math", "時速60kmで90分走ると何km進みますか？"),
    ("ja", "math", "√2が無理数であることを証明してください"),
    ("ja", "math", "5人の中から2人を選ぶ組み合わせは何通り？"),
    ("ja", "math", "1000円の3割引きはいくら？"),
    ("ja", "summarization", "この議事録を3つのポイントにまとめてください\n\n・新サービスのリリースは5月に延期\n・広告予算は前年並み\n・採用はエンジニア2名を優先"),
    ("ja", "summarization", "映画『千と千尋の神隠し』のあらすじを教えてください"),
    ("ja", "summarization", "この長いメールを一言でいうと何が言いたいの？\n\nお疲れ様です。先日の件ですが、社内で検討した結果、今回は見送らせていただくことになりました。また別の機会がございましたら、ぜひよろしくお願いいたします。"),
    ("ja", "creative_writing", "猫の視点で書いた日記風のエッセイをお願いします"),
    ("ja", "creative_writing", "結婚式のスピーチ原稿を作ってください。新郎の大学時代の友人という立場です"),
    ("ja", "creative_writing", "「月」をテーマに川柳を3つ詠んで"),
    ("ja", "extraction", "次の文から金額をすべて抜き出してください\n\nランチは1,200円、コーヒーは450円、ケーキセットは980円でした。"),
    ("ja", "extraction", "このレビューで指摘されている不満点だけを箇条書きにして\n\n音質は最高。でもバッテリーが半日しかもたないし、ケースが大きすぎてポケットに入らない。"),
    ("ja", "general", "なぜ空は青いのですか？"),
    ("ja", "general", "英語を話せるようになるには何から始めればいいですか？"),
    ("ja", "general", "東京でおすすめのラーメン屋はどこですか？"),
    ("ja", "general", "在宅勤務のメリットとデメリットを教えて"),
]

TRICKY = [
    ("en", "code", "Write a poem generator in Python that picks random words from a list."),
    ("en", "summarization", "Here's a long poem my friend wrote. I'm not asking you to write anything new, just tell me briefly what it's about.\n\nThe harbor lights go out at four,\nthe gulls forget the names of ships,\nmy father's coat hangs by the door\nstill smelling of the salt and trips."),
    ("en", "creative_writing", "Write a rap verse about calculus homework."),
    ("en", "general", "How do I write a good cover letter? Any tips?"),
    ("en", "general", "What's the history behind the Fibonacci sequence?"),
    ("en", "math", "Write out the steps to solve 5(x + 2) = 3x - 4."),
    ("ko", "code", "요약 기능 있는 챗봇 만들고 싶은데 API 호출하는 코드 샘플 좀"),
    ("ko", "creative_writing", "수학을 싫어하는 아이를 위한 재미있는 동화 지어줘"),
    ("ko", "general", "수학 잘하는 사람들은 뭐가 다른 걸까?"),
    ("zh", "code", "我想做一个自动总结网页内容的小工具，用 Python 怎么实现？"),
    ("zh", "creative_writing", "写一个关于程序员穿越到古代的搞笑故事"),
    ("zh", "general", "你觉得人工智能会取代程序员吗？"),
    ("ja", "code", "要約アプリを作りたいので、Flaskでテキストを受け取るAPIのサンプルコードを書いてください"),
    ("ja", "creative_writing", "プログラマーあるあるを川柳にしてください"),
    ("ja", "general", "数学が苦手な人でもプログラマーになれますか？"),
    ("en", "code", "Write me a haiku generator in JavaScript — it just has to pick 5/7/5 syllable lines from arrays."),
    ("en", "math", "I have a poem with 14 lines; if each line has 10 syllables, how many syllables in total?"),
    ("en", "creative_writing", "Give me a short story that uses the Pythagorean theorem as a plot device."),
    ("en", "general", "How does compound interest actually work? I don't need numbers, just the idea."),
    ("en", "general", "Can you explain what a summary judgment is in US law?"),
    ("en", "general", "Why do some people hate poetry?"),
    ("ko", "math", "소설에 나오는 마을 인구가 매년 3%씩 줄어 지금 5000명이면 10년 뒤 몇 명이야?"),
    ("zh", "code", "我想用 Python 自动把每天的销售数据生成一份总结报告发邮件，思路和代码给一下"),
    ("zh", "general", "给我推荐几本科幻小说"),
]


@pytest.mark.parametrize("lang,label,text", CLEAR, ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_labels_clear_prompts(lang, label, text):
    assert classify(text).task.value == label


@pytest.mark.parametrize("lang,label,text", TRICKY, ids=lambda v: v[:40] if isinstance(v, str) else v)
def test_labels_prompts_whose_surface_words_point_elsewhere(lang, label, text):
    assert classify(text).task.value == label


def test_cases_cover_every_language_and_label():
    seen = {(lang, label) for lang, label, _ in CLEAR}
    for lang in ("en", "ko", "zh", "ja"):
        for label in ("code", "math", "summarization", "creative_writing", "extraction",
                      "general"):
            assert (lang, label) in seen


# -- the result ------------------------------------------------------------------------------

def test_task_type_is_a_string_enum_of_the_eight_labels():
    assert TaskType.CODE == "code" and str(TaskType.CREATIVE_WRITING) == "creative_writing"
    assert [t.value for t in TaskType] == [
        "code", "math", "summarization", "creative_writing", "extraction", "general",
        "function_calling", "long_context"]


def test_classification_is_frozen_with_scores_confidence_and_cue_names():
    c = classify("Please calculate 17 * 23 and show the steps")
    assert isinstance(c, Classification)
    assert c.task is TaskType.MATH and c.text_task is TaskType.MATH
    assert 0.0 <= c.confidence <= 1.0
    assert set(c.scores) == {t.value for t in TaskType}
    assert c.scores["math"] == max(c.scores.values())
    assert "math:en:calculate" in c.matched and "math:arith" in c.matched
    with pytest.raises(AttributeError):
        c.task = TaskType.CODE  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.scores["math"] = 0  # type: ignore[index]
    assert "math" in c.explain() and "math:en:calculate" in c.explain()
    assert "task='math'" in repr(c)


def test_structural_cues_are_named_by_kind():
    fenced = classify("Why does this fail?\n\n```\nfor i in range(3) print(i)\n```")
    assert fenced.task is TaskType.CODE and "code:fence" in fenced.matched
    trace = classify("Traceback (most recent call last):\n  File \"x.py\", line 3\nKeyError: 1")
    assert "code:stacktrace" in trace.matched
    assert "math:symbol" in classify("∫ x² dx").matched


def test_a_prompt_without_cues_is_general_with_low_confidence():
    c = classify("banana bread")
    assert c.task is TaskType.GENERAL and c.matched == () and c.confidence < 0.6


def test_confidence_grows_with_the_margin():
    weak = classify("Summarize this")
    strong = classify("Summarize this article in three bullet points, a short summary please")
    assert strong.confidence >= weak.confidence


# -- function calling, long context, messages ------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def test_tools_make_function_calling_and_keep_the_text_task():
    c = classify("Write a haiku about the weather in Paris", tools=TOOLS)
    assert c.task is TaskType.FUNCTION_CALLING and c.confidence == 1.0
    assert c.text_task is TaskType.CREATIVE_WRITING
    assert c.scores["function_calling"] == 1.0 and c.matched[0] == "function_calling:tools"


def test_an_empty_tool_list_is_no_function_calling():
    assert classify("Write a haiku", tools=[]).task is TaskType.CREATIVE_WRITING


def test_long_prompts_are_long_context_past_the_threshold():
    text = "Summarize this report.\n\n" + "The quarterly numbers were steady. " * 60
    assert Classifier(long_context_tokens=100).classify(text).task is TaskType.LONG_CONTEXT
    assert Classifier(long_context_tokens=10_000).classify(text).task is TaskType.SUMMARIZATION
    assert classify(text).text_task is TaskType.SUMMARIZATION


def test_default_long_context_threshold_is_32k_tokens():
    assert DEFAULT_LONG_CONTEXT_TOKENS == 32_000
    assert Classifier().long_context_tokens == 32_000
    assert classify("word " * 40_000).task is TaskType.LONG_CONTEXT
    assert classify("word " * 20_000).task is not TaskType.LONG_CONTEXT


def test_tools_win_over_long_context():
    c = Classifier(long_context_tokens=50).classify("word " * 200, tools=TOOLS)
    assert c.task is TaskType.FUNCTION_CALLING and c.scores["long_context"] == 1.0


def test_messages_classify_the_last_user_message_and_count_all_tokens():
    history = [{"role": "system", "content": "You are helpful."},
               {"role": "user", "content": "Here is a long document. " * 80},
               {"role": "assistant", "content": "Got it."},
               {"role": "user", "content": "Now write a limerick about it."}]
    assert classify(messages=history).task is TaskType.CREATIVE_WRITING
    c = Classifier(long_context_tokens=300).classify(messages=history)
    assert c.task is TaskType.LONG_CONTEXT and c.text_task is TaskType.CREATIVE_WRITING


def test_messages_accept_content_parts():
    parts = [{"role": "user", "content": [{"type": "text", "text": "Solve x^2 - 4 = 0"},
                                          {"type": "image_url", "image_url": {"url": "x"}}]}]
    assert classify(messages=parts).task is TaskType.MATH


@pytest.mark.parametrize("kwargs,message", [
    ({}, "needs text or messages"),
    ({"text": 42}, "must be a string"),
    ({"messages": "hi"}, "list of chat messages"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "no user message"),
    ({"messages": ["hi"]}, "must be a mapping"),
])
def test_bad_input_raises_value_error_naming_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        classify(**kwargs)


@pytest.mark.parametrize("value", [0, -5, 1.5, True, "32000"])
def test_long_context_threshold_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="long_context_tokens"):
        Classifier(long_context_tokens=value)


# -- user tables -----------------------------------------------------------------------------

def test_extra_keywords_add_new_cues():
    clf = Classifier(extra_keywords={"code": {"zorblang": 5.0}})
    c = clf.classify("how do I do a loopy thing in zorblang")
    assert c.task is TaskType.CODE and "code:user:zorblang" in c.matched
    assert classify("how do I do a loopy thing in zorblang").task is TaskType.GENERAL


def test_extra_keywords_reweight_and_switch_off_shipped_cues():
    assert classify("summarize").task is TaskType.SUMMARIZATION
    off = Classifier(extra_keywords={"summarization": {"summarize": 0}})
    assert off.classify("summarize").task is TaskType.GENERAL
    terraform = Classifier(extra_keywords={"code": {"terraform": 2.0}})
    assert terraform.classify("a terraform module for an s3 bucket").task is TaskType.CODE


def test_extra_keywords_in_cjk_match_as_substrings():
    clf = Classifier(extra_keywords={"math": {"算盘题": 6.0}})
    assert clf.classify("来一道算盘题吧").task is TaskType.MATH


def test_a_keywords_file_extends_a_language_table(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({
        "lang": "en", "cues": {"creative_writing": {"villanelle": 4.0}},
        "patterns": {"code": {"yaml-key": {"re": "\\bkey:\\s*value\\b", "w": 4.0}}}}),
        encoding="utf-8")
    clf = Classifier(keywords_file=str(path))
    assert clf.classify("a villanelle about rain").task is TaskType.CREATIVE_WRITING
    assert "code:en:yaml-key" in clf.classify("why does key: value break").matched


def test_a_plain_keywords_file_works_like_extra_keywords(tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"extraction": {"harvest the": 5.0}}), encoding="utf-8")
    assert Classifier(keywords_file=path).classify("harvest the names").task is \
        TaskType.EXTRACTION


def test_only_user_tables_when_defaults_are_off():
    clf = Classifier(extra_keywords={"math": {"sum": 2.0}}, use_default_tables=False)
    assert clf.classify("write a poem").task is TaskType.GENERAL
    assert clf.classify("sum these").task is TaskType.MATH


@pytest.mark.parametrize("extra,message", [
    ({"poetry": {"ode": 1.0}}, "unknown label 'poetry'"),
    ({"code": {"x": "heavy"}}, "weight must be a number"),
    ({"code": {"": 1.0}}, "non-empty string"),
    ({"code": ["python"]}, "must map phrases to weights"),
])
def test_bad_extra_keywords_raise_value_error(extra, message):
    with pytest.raises(ValueError, match=message):
        Classifier(extra_keywords=extra)


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    (json.dumps({"lang": "xx", "cues": {"code": {"a": 1}}}), "needs \"script\""),
    (json.dumps({"lang": "en", "patterns": {"code": {"p": {"re": "(unclosed", "w": 1}}}}),
     "bad regular expression"),
    (json.dumps({"lang": "en", "patterns": {"code": {"p": {"re": "(a)", "w": 1}}}}),
     "capturing groups"),
    (json.dumps({"lang": "en", "combos": {"code": {"c": {"all": ["one"], "w": 1}}}}),
     "two or more terms"),
])
def test_bad_keywords_files_raise_value_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        Classifier(keywords_file=str(path))
    assert "bad.json" in str(info.value)


def test_a_missing_keywords_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read keywords file"):
        Classifier(keywords_file=str(tmp_path / "absent.json"))


# -- loading, threads, speed -----------------------------------------------------------------

def test_import_reads_no_tables_until_the_first_classification():
    code = ("import sys, llmroute; import llmroute.classification.classifier as c; "
            "assert c._DEFAULT is None; c.classify('hi'); assert c._DEFAULT is not None; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_one_default_classifier_is_shared_by_threads():
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(classify("写一首关于秋天的诗").task)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors and results == [TaskType.CREATIVE_WRITING] * 80


def test_a_2000_character_prompt_classifies_in_well_under_a_millisecond_on_average():
    text = ("Summarize the article below in three bullet points.\n\n"
            + "Officials said the new rail line will open next spring, cutting travel times. " * 30
            )[:2000]
    classify(text)
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        classify(text)
    per_call = (time.perf_counter() - start) / runs
    assert per_call < 0.005  # generous: ~0.3 ms measured; a loaded CI box must not flake
